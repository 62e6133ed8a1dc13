"""The dashboard signed in with email and password (a session cookie, not the secret key): a
manager sees the leads and records a contact (a change that carries the CSRF token), stays
signed in across a reload, and signs out; the cookie is HttpOnly, out of the page's reach."""

from typing import Any

import httpx
import pytest

from app.team.service import SESSION_COOKIE
from tests.browser.conftest import leads_of
from tests.browser.pw import expect
from tests.factories import basic_auth, track
from tests.team.helpers import PASSWORD, make_user

pytestmark = pytest.mark.browser
FAST_POLLING = "window.LEADHEAT_DASHBOARD = {pollMs: 250};"


async def test_a_manager_signs_in_records_a_contact_and_signs_out(
    new_context, live_server, session, site
):
    await make_user(session, site, "manager", email="anna@shop.example")
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        event = track("visitor-1", "Contact Requested", properties={"phone": "+7 900 000 00 01"})
        r = await client.post("/v1/batch", auth=basic_auth(site.write_key), json={"batch": [event]})
        assert r.status_code == 200
    context = await new_context()
    await context.add_init_script(FAST_POLLING)
    page = await context.new_page()
    await page.goto(f"{live_server.url}/dashboard")

    await page.get_by_test_id("email").fill("anna@shop.example")
    await page.get_by_test_id("password").fill("not the password")
    await page.get_by_test_id("sign-in-password").click()
    await expect(page.get_by_test_id("password-error")).to_contain_text("Wrong email or password")

    await page.get_by_test_id("password").fill(PASSWORD)
    await page.get_by_test_id("sign-in-password").click()
    row = page.locator("[data-testid=lead-row][data-temperature=hot]")
    await expect(row).to_have_count(1)
    cookies: list[Any] = await context.cookies()
    (cookie,) = [c for c in cookies if c["name"] == SESSION_COOKIE]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert SESSION_COOKIE not in await page.evaluate("document.cookie")
    assert await page.evaluate("sessionStorage.getItem('leadheat.secretKey')") is None

    # A change with the cookie: the page sends the session's CSRF token with it.
    await row.get_by_test_id("contact-phone").click()
    await expect(row.get_by_test_id("countdown")).to_have_attribute("data-state", "contacted")
    (lead,) = await leads_of(session, site)
    assert lead.first_contacted_at is not None

    # A reload keeps the sign-in, and changes still carry the token (fetched again).
    await page.reload()
    row = page.locator("[data-testid=lead-row][data-temperature=hot]")
    await expect(row).to_have_count(1)
    await row.get_by_test_id("open-lead").click()
    await page.get_by_test_id("lead-detail").get_by_test_id("status-qualified").click()
    await expect(row.get_by_test_id("status")).to_have_text("qualified")

    await page.get_by_test_id("sign-out").click()
    await expect(page.get_by_test_id("signin")).to_be_visible()
    await page.reload()
    await expect(page.get_by_test_id("password-form")).to_be_visible()
    await expect(page.get_by_test_id("lead-row")).to_have_count(0)
