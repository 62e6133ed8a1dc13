"""Do Not Track and consent in a real browser: nothing is sent or stored until allowed."""

from typing import Any

import pytest

from tests.browser.conftest import message_counts
from tests.browser.pw import expect
from tests.helpers import eventually

pytestmark = pytest.mark.browser

STORED_BY_TRACKER = """() => ({
    local: Object.keys(localStorage).filter((k) => k.startsWith("lh_") && k !== "lh_consent"),
    session: Object.keys(sessionStorage).filter((k) => k.startsWith("lh_")),
    cookies: document.cookie.split("; ").filter((c) => c.startsWith("lh_")),
})"""
NOTHING_STORED: dict[str, list[str]] = {"local": [], "session": [], "cookies": []}


async def browse(page: Any) -> None:
    """A visitor's actions; then a forced flush, so anything that would be sent has been."""
    await page.wait_for_function("window.leadheat && window.leadheat.VERSION")
    await page.click("#add")
    await page.click("#spa-3")
    await page.fill("#phone", "+7 900 555-55-55")
    await page.click("#call-me")
    await expect(page.locator("#done")).not_to_be_empty()
    await page.evaluate("leadheat.flush()")


def count_batches(context: Any) -> list[str]:
    sent: list[str] = []
    context.on("request", lambda r: sent.append(r.url) if "/v1/batch" in r.url else None)
    return sent


@pytest.mark.parametrize(
    "signal",
    [
        "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})",
        "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})",
    ],
    ids=["do-not-track", "global-privacy-control"],
)
async def test_do_not_track_suppresses_sending_and_storing(
    new_context, make_shop, session, site, signal
):
    shop = make_shop(respectDoNotTrack=True)
    context = await new_context()
    await context.add_init_script(signal)
    sent = count_batches(context)
    page = await context.new_page()
    await page.goto(f"{shop.url}/fridges/1")
    await browse(page)
    assert await page.evaluate("leadheat._state().allowed") is False
    assert await page.evaluate(STORED_BY_TRACKER) == NOTHING_STORED
    assert sent == []
    assert await message_counts(session, site) == {}


async def test_nothing_is_sent_before_consent_and_the_page_so_far_after_it(
    new_context, make_shop, session, site
):
    shop = make_shop(requireConsent=True)
    context = await new_context()
    sent = count_batches(context)
    page = await context.new_page()
    await page.goto(f"{shop.url}/fridges/1")
    await browse(page)
    assert await page.evaluate(STORED_BY_TRACKER) == NOTHING_STORED
    assert sent == []
    waiting = len(await page.evaluate("leadheat._state().queue"))
    assert waiting >= 5  # kept in memory only

    await page.evaluate("leadheat.consent(true)")

    async def all_arrived() -> dict[str, int] | None:
        counts = await message_counts(session, site)
        return counts if len(counts) >= waiting else None

    await eventually(all_arrived)
    assert (await page.evaluate(STORED_BY_TRACKER))["cookies"]  # the anonymous id, now

    await page.evaluate("leadheat.consent(false)")  # withdrawn: the tracker forgets everything
    assert await page.evaluate(STORED_BY_TRACKER) == NOTHING_STORED
    before = len(sent)
    await page.click("#add")
    await page.evaluate("leadheat.flush()")
    assert len(sent) == before
