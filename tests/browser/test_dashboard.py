"""The sales dashboard in a real browser: a visitor on the demo shop asks for a callback, the
lead turns hot and shows up with its first-contact countdown, and a contact is recorded with
one click; sign-in, polling with ETags, errors and sign-out."""

import re
from typing import Any

import httpx
import pytest

from tests.browser.conftest import leads_of
from tests.browser.pw import expect
from tests.factories import basic_auth, track

pytestmark = pytest.mark.browser
FAST_POLLING = "window.LEADHEAT_DASHBOARD = {pollMs: 250};"


async def open_dashboard(new_context: Any, live_server: Any, secret_key: str) -> Any:
    context = await new_context(viewport={"width": 1360, "height": 900})
    await context.add_init_script(FAST_POLLING)
    page = await context.new_page()
    await page.goto(f"{live_server.url}/dashboard")
    await page.get_by_test_id("secret-key").fill(secret_key)
    await page.get_by_test_id("sign-in").click()
    await expect(page.get_by_test_id("sync-status")).to_contain_text("live")
    return page


async def test_a_callback_request_turns_hot_and_is_contacted_from_the_dashboard(
    new_context, make_shop, live_server, session, site
):
    shop = make_shop()
    visitor = await (await new_context()).new_page()
    await visitor.goto(f"{shop.url}/fridges/1")
    await visitor.click("#add")
    await visitor.click("#link-2")  # a full page load: the queue survives it
    await visitor.wait_for_url("**/fridges/2")
    await visitor.fill("#phone", "+7 900 123-45-67")
    await visitor.click("#call-me")
    await visitor.wait_for_function("window.leadheat && leadheat._state().queue.length === 0")

    page = await open_dashboard(new_context, live_server, site.secret_key)
    row = page.locator("[data-testid=lead-row][data-temperature=hot]")
    await expect(row).to_have_count(1)
    await expect(row.get_by_test_id("contacts")).to_contain_text("+7 900 123-45-67")
    await expect(row.get_by_test_id("interests")).to_contain_text("fridges")
    await expect(row.get_by_test_id("last-url")).to_contain_text("/fridges/2")
    countdown = row.get_by_test_id("countdown")
    await expect(countdown).to_have_attribute("data-state", "due")
    await expect(countdown.locator(".countdown-time")).to_have_text(re.compile(r"^0[0-5]:\d\d$"))
    await expect(page.get_by_test_id("funnel-step").first).to_be_visible()
    await expect(page.get_by_test_id("speed-tile")).to_have_count(5)

    await row.get_by_test_id("contact-phone").click()
    await expect(countdown).to_have_attribute("data-state", "contacted")
    await expect(page.get_by_test_id("toast")).to_contain_text("phone")
    (lead,) = await leads_of(session, site)
    assert lead.first_contacted_at is not None
    assert lead.contacts["phone"] == "+7 900 123-45-67"

    await row.get_by_test_id("open-lead").click()
    detail = page.get_by_test_id("lead-detail")
    await expect(detail.get_by_test_id("detail-title")).to_have_text("+7 900 123-45-67")
    await expect(detail.get_by_test_id("breakdown-item").first).to_be_visible()
    # Each line says why in words: the request's points, their half-life and age.
    request = detail.locator("[data-testid=breakdown-item][data-rule-id=contact-requested]")
    await expect(request.get_by_test_id("breakdown-why")).to_have_text(
        re.compile(r"^Requested a contact: 40, half-life 7 days, .+ -> (40|39\.\d+)$")
    )
    await expect(detail.get_by_test_id("timeline")).to_contain_text("Contact Requested")
    await expect(detail.get_by_test_id("timeline")).to_contain_text("Product Added")

    await detail.get_by_test_id("status-qualified").click()
    await expect(row.get_by_test_id("status")).to_have_text("qualified")
    await detail.get_by_test_id("close-detail").click()
    await expect(detail).to_be_hidden()


async def test_sign_in_polling_errors_and_sign_out(new_context, live_server, site):
    context = await new_context()
    await context.add_init_script(FAST_POLLING)
    page = await context.new_page()
    await page.goto(f"{live_server.url}/dashboard")
    await page.get_by_test_id("secret-key").fill("sk_not-a-real-key")
    await page.get_by_test_id("sign-in").click()
    await expect(page.get_by_test_id("signin-error")).to_contain_text("not accepted")
    await page.get_by_test_id("secret-key").fill(site.write_key)
    await page.get_by_test_id("sign-in").click()
    await expect(page.get_by_test_id("signin-error")).to_contain_text("write key")

    async with page.expect_response(lambda r: "/v1/leads?" in r.url and r.status == 304):
        await page.get_by_test_id("secret-key").fill(site.secret_key)
        await page.get_by_test_id("sign-in").click()
        await expect(page.get_by_test_id("lead-empty")).to_be_visible()
    assert site.secret_key not in page.url
    assert await page.evaluate("sessionStorage.getItem('leadheat.secretKey')") == site.secret_key

    # A new lead appears by itself: the next poll gets a 200 instead of a 304.
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        response = await client.post(
            "/v1/batch",
            auth=basic_auth(site.write_key),
            json={"batch": [track("visitor-1", "Product Viewed", properties={"category": "tv"})]},
        )
        assert response.status_code == 200
    await expect(page.get_by_test_id("lead-row")).to_have_count(1)
    await expect(page.get_by_test_id("lead-empty")).to_be_hidden()

    # A failing service is shown, and the dashboard recovers by itself.
    async def fail(route: Any) -> None:
        await route.fulfill(status=500, json={"code": "internal", "message": "Database away."})

    await page.route("**/v1/leads?*", fail)
    await expect(page.get_by_test_id("error-banner")).to_contain_text("Database away.")
    await page.unroute("**/v1/leads?*", fail)
    await expect(page.get_by_test_id("error-banner")).to_be_hidden()

    # A key that stops working (401) leads back to the sign-in form.
    await page.evaluate("sessionStorage.setItem('leadheat.secretKey', 'sk_revoked')")
    await expect(page.get_by_test_id("signin")).to_be_visible()
    await expect(page.get_by_test_id("signin-error")).to_contain_text("Sign in again")
    assert await page.evaluate("sessionStorage.getItem('leadheat.secretKey')") is None

    await page.get_by_test_id("secret-key").fill(site.secret_key)
    await page.get_by_test_id("sign-in").click()
    await expect(page.get_by_test_id("lead-row")).to_have_count(1)
    await page.get_by_test_id("sign-out").click()
    await expect(page.get_by_test_id("signin")).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('leadheat.secretKey')") is None
    await page.reload()
    await expect(page.get_by_test_id("signin")).to_be_visible()
