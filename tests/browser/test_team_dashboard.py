"""The sales team in the dashboard: a manager sees "My leads" first (the overdue one marked),
goes off and on duty, claims an unowned lead, hands one over, records a contact with a note
and keeps their settings; an admin invites a manager on the team page, changes a role and
deactivates someone; the invited manager signs in (no team page for them) and changes that
first password; nobody sees another site's leads."""

import asyncio
import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from app.db import utcnow
from app.domain.tables import Lead
from app.team.models import User
from app.webhooks.models import LeadContact
from tests.browser.conftest import leads_of
from tests.browser.pw import expect
from tests.factories import send, without_ladder
from tests.leads.helpers import hot
from tests.team.helpers import ALL_WEEK, PASSWORD, awake_zone, make_user

pytestmark = pytest.mark.browser
FAST_POLLING = "window.LEADHEAT_DASHBOARD = {pollMs: 250};"


async def _user(session, email: str) -> User:
    session.expire_all()
    user = await session.scalar(select(User).where(User.email == email))
    assert user is not None
    session.expunge(user)
    await session.rollback()  # no read transaction left to hold off the server's writes
    return user


async def _sign_in(new_context, live_server, email: str, password: str = PASSWORD, *, before=None):
    """A signed-in page; `before(page)`, if given, runs before the dashboard is loaded (to
    route its requests, say)."""
    context = await new_context()
    await context.add_init_script(FAST_POLLING)
    page = await context.new_page()
    if before is not None:
        await before(page)
    await page.goto(f"{live_server.url}/dashboard")
    await page.get_by_test_id("email").fill(email)
    await page.get_by_test_id("password").fill(password)
    await page.get_by_test_id("sign-in-password").click()
    await expect(page.get_by_test_id("sign-out")).to_be_visible()
    return page


async def test_a_manager_works_their_leads(new_context, live_server, session, site, other_site):
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        # The ladder would hand the unowned lead to Anna as soon as she is on duty.
        await without_ladder(client, site)
        await send(client, site, *hot("before-anyone"))  # nobody on duty: stays unowned
        await send(client, other_site, *hot("elsewhere"))
        in_hours = {"working_hours": ALL_WEEK, "time_zone": awake_zone()}
        await make_user(session, site, "manager", "anna@shop.example", name="Anna", **in_hours)
        await send(client, site, *hot("for-anna"))  # round-robin: Anna's
    await make_user(session, site, "manager", "boris@shop.example", name="Boris", on_duty=False)
    anna = await _user(session, "anna@shop.example")
    (unowned,) = [lead for lead in await leads_of(session, site) if lead.owner_id is None]
    (hers,) = [lead for lead in await leads_of(session, site) if lead.owner_id == anna.id]
    await session.execute(
        update(Lead).where(Lead.id == hers.id).values(contact_by=utcnow() - timedelta(minutes=2))
    )
    await session.commit()

    page = await _sign_in(new_context, live_server, "anna@shop.example")
    mine = page.get_by_test_id("my-lead-list").get_by_test_id("lead-row")
    others = page.get_by_test_id("lead-list").get_by_test_id("lead-row")
    await expect(mine).to_have_count(1)
    await expect(mine).to_have_attribute("data-lead-id", str(hers.id))
    await expect(mine.get_by_test_id("countdown")).to_have_attribute("data-state", "overdue")
    await expect(page.get_by_test_id("my-leads")).to_contain_text("1 overdue")
    # The other site's hot lead is nowhere: only this site's unowned one is under the rest.
    await expect(others).to_have_count(1)
    await expect(others.get_by_test_id("owner")).to_have_text("unowned")
    await expect(page.get_by_test_id("nav-team")).to_be_hidden()

    # Off duty and on again, from the top bar.
    await page.get_by_test_id("duty-switch").uncheck()
    await expect(page.get_by_test_id("duty")).to_contain_text("Off duty")
    assert (await _user(session, "anna@shop.example")).on_duty is False
    await page.get_by_test_id("duty-switch").check()
    await expect(page.get_by_test_id("duty")).to_contain_text("On duty")
    assert (await _user(session, "anna@shop.example")).on_duty is True

    # Claim the unowned lead ("I'm on it"): it joins My leads; then hand it to Boris.
    await others.get_by_test_id("claim").click()
    await expect(mine).to_have_count(2)
    await expect(others).to_have_count(0)
    claimed = mine.and_(page.locator(f"[data-lead-id='{unowned.id}']"))
    await claimed.get_by_test_id("handover").click()
    await claimed.get_by_test_id("handover-to").select_option(label="Boris (off duty)")
    await claimed.get_by_test_id("handover-confirm").click()
    await expect(mine).to_have_count(1)
    await expect(others.get_by_test_id("owner")).to_have_text("Boris")

    # A contact with a note from the lead card stops the clock.
    await mine.get_by_test_id("open-lead").click()
    detail = page.get_by_test_id("lead-detail")
    await detail.get_by_test_id("contact-channel").select_option("phone")
    await detail.get_by_test_id("contact-note").fill("Called: wants the red one delivered")
    await detail.get_by_test_id("contact-record").click()
    await expect(mine.get_by_test_id("countdown")).to_have_attribute("data-state", "contacted")
    contact = await session.scalar(select(LeadContact).where(LeadContact.lead_id == hers.id))
    assert contact is not None
    assert (contact.channel, contact.note, contact.by) == (
        "phone",
        "Called: wants the red one delivered",
        "Anna",
    )
    await session.rollback()

    # Settings: time zone and working hours.
    await page.get_by_test_id("settings-open").click()
    await page.get_by_test_id("settings-zone").select_option("Asia/Tokyo")
    await page.get_by_test_id("hours-sat").uncheck()
    await page.get_by_test_id("hours-mon-start").fill("08:30")
    await page.get_by_test_id("settings-save").click()
    await expect(page.get_by_test_id("settings")).to_be_hidden()
    anna = await _user(session, "anna@shop.example")
    assert anna.time_zone == "Asia/Tokyo"
    assert anna.working_hours["sat"] is None
    assert anna.working_hours["mon"] == {"start": "08:30", "end": "23:59"}


async def test_an_open_menu_stays_open_when_a_poll_redraws_the_rows(
    new_context, live_server, session, site
):
    """Rows drawn before the colleagues are known get their "hand over..." once they are. A
    poll that brings any change redraws every row: the hand-over menu the user has open (and
    the colleague picked in it) must survive that, where it used to close under the cursor;
    a menu's action closes its menu, so that the redraw after it does not reopen it."""
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        await without_ladder(client, site)
        in_hours = {"working_hours": ALL_WEEK, "time_zone": awake_zone()}
        await make_user(session, site, "manager", "anna@shop.example", name="Anna", **in_hours)
        await send(client, site, *hot("for-anna"))  # round-robin: Anna's
    boris = await make_user(
        session, site, "manager", "boris@shop.example", name="Boris", on_duty=False
    )
    boris_id = boris.id
    (hers,) = await leads_of(session, site)
    await session.rollback()

    # The colleagues arrive after the rows are drawn: the rows get their "hand over..." then.
    release = asyncio.Event()

    async def hold_colleagues(route) -> None:
        await release.wait()
        await route.continue_()

    async def route_colleagues(page) -> None:
        await page.route(re.compile(r".*/v1/me/colleagues$"), hold_colleagues)

    page = await _sign_in(new_context, live_server, "anna@shop.example", before=route_colleagues)
    rows = page.get_by_test_id("lead-row")
    row = page.locator(f"[data-lead-id='{hers.id}']")
    await expect(rows).to_have_count(1)
    await expect(row.get_by_test_id("handover")).to_have_count(0)
    release.set()
    await row.get_by_test_id("handover").click()
    await row.get_by_test_id("handover-to").select_option(label="Boris (off duty)")

    # Another visitor turns hot meanwhile: the next poll redraws the list, now of two leads.
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        await send(client, site, *hot("newcomer"))
    await expect(rows).to_have_count(2)
    await expect(row.get_by_test_id("handover-confirm")).to_be_visible()
    await expect(row.get_by_test_id("handover-to")).to_have_value(str(boris_id))
    await row.get_by_test_id("handover-confirm").click()
    await expect(row.get_by_test_id("owner")).to_have_text("Boris")
    lead = await session.scalar(select(Lead).where(Lead.id == hers.id))
    assert lead is not None
    assert lead.owner_id == boris_id
    await session.rollback()

    # The newcomer is lost for a reason: its menu closes, and the redraw leaves it closed.
    newcomer = page.locator(f"[data-testid='lead-row']:not([data-lead-id='{hers.id}'])")
    await newcomer.get_by_test_id("status-lost").click()
    await newcomer.get_by_test_id("lost-nothing_in_budget").click()
    await expect(newcomer.get_by_test_id("status")).to_have_text("lost: Nothing in budget")
    await expect(newcomer.get_by_test_id("lost-nothing_in_budget")).to_be_hidden()


async def test_an_admin_invites_a_manager_who_signs_in(new_context, live_server, session, site):
    await make_user(session, site, "admin", "owner@shop.example", name="Olga")
    await make_user(session, site, "manager", "leaving@shop.example")
    page = await _sign_in(new_context, live_server, "owner@shop.example")
    await page.get_by_test_id("nav-team").click()
    people = page.get_by_test_id("person")
    await expect(people).to_have_count(2)

    await page.get_by_test_id("invite-email").fill("Vera@Shop.example")
    await page.get_by_test_id("invite-name").fill("Vera")
    await page.get_by_test_id("invite-submit").click()
    password = await page.get_by_test_id("invited-password").text_content()
    assert password is not None
    assert len(password) >= 20
    await expect(people).to_have_count(3)
    vera = await _user(session, "vera@shop.example")
    assert (vera.role, vera.name, vera.active) == ("manager", "Vera", True)

    leaving = page.locator("[data-testid=person][data-email='leaving@shop.example']")
    await leaving.get_by_test_id("person-role").select_option("admin")
    await expect(page.get_by_test_id("toast")).to_contain_text("is now an admin")
    assert (await _user(session, "leaving@shop.example")).role == "admin"
    await leaving.get_by_test_id("person-deactivate").click()
    await expect(leaving).to_have_attribute("data-active", "false")
    assert (await _user(session, "leaving@shop.example")).active is False

    manager = await _sign_in(new_context, live_server, "vera@shop.example", password)
    await expect(manager.get_by_test_id("my-leads")).to_be_visible()
    await expect(manager.get_by_test_id("nav-team")).to_be_hidden()
    await manager.goto(f"{live_server.url}/dashboard#team")
    await expect(manager.get_by_test_id("my-leads")).to_be_visible()
    await expect(manager.get_by_test_id("team-page")).to_be_hidden()

    # Vera makes the first password her own.
    await manager.get_by_test_id("settings-open").click()
    await manager.locator("#password-change summary").click()
    await manager.get_by_test_id("password-current").fill(password)
    await manager.get_by_test_id("password-new").fill("vera's own password")
    await manager.get_by_test_id("password-save").click()
    await expect(manager.get_by_test_id("toast")).to_contain_text("password is changed")
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        body = {"email": "vera@shop.example", "password": "vera's own password"}
        assert (await client.post("/v1/session", json=body)).status_code == 200
