"""Browser tests: Debian's Chromium driven by Playwright's async API, against a real server.

They skip with the reason when /usr/bin/chromium or the playwright package is missing, and
fail instead when CI=true. Nothing here downloads a browser.
"""

import importlib.util
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.tables import Event, Lead
from app.sites.service import CreatedSite
from tests.browser.shop import DemoShop
from tests.conftest import IN_CI, LiveServer

CHROMIUM = os.environ.get("LEADHEAT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Headless Chromium says "HeadlessChrome", which ingestion rightly files as a bot (never scored).
VISITOR_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Safari/537.36"
)


def _missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    """One Chromium for the session; each test opens its own contexts."""
    reason = _missing()
    if reason:
        if IN_CI:
            pytest.fail(f"browser tests are mandatory in CI: {reason}")
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def new_context(browser: Any) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """Opens browser contexts (a visitor, a salesperson...) and closes them after the test."""
    contexts: list[Any] = []

    async def open_context(**kwargs: Any) -> Any:
        context = await browser.new_context(**{"user_agent": VISITOR_USER_AGENT, **kwargs})
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        await context.close()


@pytest.fixture
def make_shop(live_server: LiveServer, site: CreatedSite) -> Iterator[Callable[..., DemoShop]]:
    """Starts demo shops whose tracker sends to the live server (or to `host`)."""
    shops: list[DemoShop] = []

    def start(host: str | None = None, **options: Any) -> DemoShop:
        init = {"writeKey": site.write_key, "host": host or live_server.url, "flushInterval": 100}
        shop = DemoShop(f"{live_server.url}/tracker.js", {**init, **options}).__enter__()
        shops.append(shop)
        return shop

    yield start
    for shop in shops:
        shop.__exit__()


# The helpers below end their transaction: on SQLite an open read transaction would hold
# off the service's writes (and so its answers) until the test ends.


async def message_counts(session: AsyncSession, site: CreatedSite) -> dict[str, int]:
    """messageId -> how many times it is stored for the site."""
    rows = await session.execute(
        select(Event.message_id, func.count())
        .where(Event.site_id == site.site.id)
        .group_by(Event.message_id)
    )
    counts = {message_id: count for message_id, count in rows}
    await session.rollback()
    return counts


async def leads_of(session: AsyncSession, site: CreatedSite) -> list[Lead]:
    """The site's live leads (not merged into another), as committed now."""
    session.expire_all()
    leads = list(
        await session.scalars(
            select(Lead).where(Lead.site_id == site.site.id, Lead.merged_into_id.is_(None))
        )
    )
    session.expunge_all()  # keep their loaded state through the rollback
    await session.rollback()
    return leads
