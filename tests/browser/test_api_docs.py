"""/docs and /redoc render in Chromium with every request outside Leadheat blocked: the
interactive documentation needs no internet."""

from typing import Any

import pytest

from tests.browser.pw import Route, expect
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser


async def offline_page(new_context: Any, live_server: LiveServer) -> tuple[Any, list[str]]:
    """A page on which any request not to the live server is refused (and listed)."""
    context = await new_context()
    blocked: list[str] = []

    async def only_leadheat(route: Route) -> None:
        url = route.request.url
        if url == live_server.url or url.startswith(live_server.url + "/"):
            await route.continue_()
        else:
            blocked.append(url)
            await route.abort("internetdisconnected")

    await context.route("**/*", only_leadheat)
    return await context.new_page(), blocked


async def test_swagger_ui_lists_the_operations_offline(new_context, live_server):
    page, blocked = await offline_page(new_context, live_server)
    await page.goto(f"{live_server.url}/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("Leadheat")
    track = page.locator(".opblock-post .opblock-summary-path", has_text="/v1/track")
    await expect(track).to_have_count(1)
    leads = page.locator(".opblock-get .opblock-summary-path", has_text="/v1/leads")
    await expect(leads.first).to_be_visible()
    assert await page.locator(".opblock").count() > 20
    assert blocked == []


async def test_redoc_renders_the_operations_offline(new_context, live_server):
    page, blocked = await offline_page(new_context, live_server)
    await page.goto(f"{live_server.url}/redoc")
    # Redoc lays out every operation before it shows the first heading: over 15 s on a slow,
    # busy 2-core machine (the whole suite around it).
    await expect(page.locator("h1", has_text="Leadheat")).to_be_visible(timeout=45_000)
    # One section a tag, an operation heading each, with its method and path.
    await expect(page.get_by_role("menuitem").first).to_be_visible()
    await expect(page.locator("h2", has_text="Track").first).to_be_visible()
    assert await page.locator("h2").count() > 20
    await expect(page.get_by_text("/v1/track", exact=True).first).to_be_attached()
    # Search runs in a worker (allowed by the page's Content-Security-Policy).
    await page.get_by_placeholder("Search...").fill("rotate")
    results = page.locator("[data-role='search:results'] [role=menuitem]")
    await expect(results.filter(has_text="Rotate Secret Key")).to_have_count(1)
    assert blocked == []
