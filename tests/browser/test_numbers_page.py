"""The numbers page: an admin picks a period and reads the team's speed to lead and each
owner's (median, shares within the marks, overdue, won and lost with reasons) from leads made
hot through the API whose hot and contact times are then set; a manager reads it too (their
own row marked), and the lead that waited too long carries the at-risk mark and its ladder."""

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from app.db import utcnow
from app.domain.tables import Lead
from app.webhooks.models import LeadTimer
from tests.browser.conftest import leads_of
from tests.browser.pw import expect
from tests.browser.test_team_dashboard import _sign_in, _user
from tests.factories import send
from tests.leads.helpers import hot
from tests.team.helpers import make_user

pytestmark = pytest.mark.browser


async def test_the_team_reads_its_numbers(new_context, live_server, session, site):
    for role, email, name in [
        ("admin", "ada@shop.example", "Ada"),
        ("manager", "anna@shop.example", "Anna"),
        ("manager", "boris@shop.example", "Boris"),
    ]:
        await make_user(session, site, role, email, name=name, on_duty=False)
    anna, boris = (
        await _user(session, "anna@shop.example"),
        await _user(session, "boris@shop.example"),
    )
    # Waits in seconds from hot to first contact (None: not contacted yet, overdue).
    plan = [
        (anna, 120, "contacted", None),
        (anna, 250, "won", None),
        (anna, 720, "lost", "waited_too_long"),
        (boris, 30, "contacted", None),
        (boris, 1200, "lost", "bought_elsewhere"),
        (boris, None, "new", None),
    ]
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        for i in range(len(plan)):
            await send(client, site, *hot(f"visitor-{i}"))
    leads = sorted(await leads_of(session, site), key=lambda lead: lead.id)
    assert [lead.temperature for lead in leads] == ["hot"] * len(plan)
    base = utcnow().replace(microsecond=0) - timedelta(hours=2)
    for i, (lead, (owner, wait, status, reason)) in enumerate(zip(leads, plan, strict=True)):
        hot_at = base + timedelta(minutes=i)
        await session.execute(
            update(Lead)
            .where(Lead.id == lead.id)
            .values(
                owner_id=owner.id,
                became_hot_at=hot_at,
                contact_by=hot_at + timedelta(minutes=5),
                first_contacted_at=None if wait is None else hot_at + timedelta(seconds=wait),
                status=status,
                lost_reason=reason,
            )
        )
    waited = leads[-1]  # the ladder's last step marked it at risk
    waited_hot_at = base + timedelta(minutes=len(plan) - 1)
    session.add(
        LeadTimer(
            site_id=site.site.id,
            lead_id=waited.id,
            kind="mark_at_risk",
            episode=waited_hot_at.isoformat(),
            mark=30,
            due_at=waited_hot_at + timedelta(minutes=30),
            status="fired",
            fired_at=waited_hot_at + timedelta(minutes=30),
        )
    )
    await session.commit()

    page = await _sign_in(new_context, live_server, "ada@shop.example")
    await page.get_by_test_id("nav-numbers").click()
    numbers = page.get_by_test_id("numbers-page")
    await expect(numbers).to_be_visible()
    await expect(page.get_by_test_id("lead-list")).to_be_hidden()
    await page.get_by_test_id("period-30").click()

    def row(owner: str):
        return numbers.locator(f"[data-testid=numbers-row][data-owner='{owner}']")

    team, hers, his = row("team"), row("anna@shop.example"), row("boris@shop.example")
    # Anna: 2 min, 4 min 10 s, 12 min. Boris: 30 s, 20 min and one not contacted yet.
    await expect(hers.get_by_test_id("median")).to_have_text("4 min 10 s")
    await expect(hers.get_by_test_id("within-5")).to_have_text("66.7%")
    await expect(hers.get_by_test_id("within-15")).to_have_text("100%")
    await expect(hers.get_by_test_id("won")).to_have_text("1")
    await expect(hers.get_by_test_id("lost")).to_have_text("1 (waited too long 1)")
    await expect(his.get_by_test_id("hot-leads")).to_have_text("3")
    await expect(his.get_by_test_id("median")).to_have_text("10 min 15 s")
    await expect(his.get_by_test_id("p90")).to_have_text("18 min 3 s")
    await expect(his.get_by_test_id("within-5")).to_have_text("33.3%")
    await expect(his.get_by_test_id("within-30")).to_have_text("66.7%")
    await expect(his.get_by_test_id("overdue")).to_have_text("1")
    # The team: 6 hot, 5 contacted; waits 30 s, 2 min, 4 min 10 s, 12 min, 20 min.
    await expect(team.get_by_test_id("median")).to_have_text("4 min 10 s")
    await expect(team.get_by_test_id("within-5")).to_have_text("50%")
    await expect(page.get_by_test_id("team-median")).to_contain_text("4 min 10 s")
    await expect(page.get_by_test_id("team-lost")).to_contain_text(
        "2 (bought elsewhere 1, waited too long 1)"
    )
    # A custom period that ended before they turned hot: nothing.
    await page.get_by_test_id("period-custom").click()
    await page.get_by_test_id("period-from").fill("2026-01-01")
    await page.get_by_test_id("period-to").fill("2026-01-31")
    await page.get_by_test_id("period-apply").click()
    await expect(team.get_by_test_id("hot-leads")).to_have_text("0")
    await expect(hers).to_have_count(0)

    # The lead that waited too long: marked in the list, its ladder on the card.
    await page.get_by_test_id("nav-leads").click()
    waiting = page.locator(f"[data-testid=lead-row][data-lead-id='{waited.id}']")
    await expect(waiting.get_by_test_id("at-risk")).to_be_visible()
    await expect(page.get_by_test_id("at-risk")).to_have_count(1)
    await waiting.get_by_test_id("open-lead").click()
    step = page.get_by_test_id("lead-detail").get_by_test_id("escalation-step")
    await expect(step).to_have_attribute("data-step", "mark_at_risk")
    await expect(step).to_have_attribute("data-status", "fired")

    # A manager reads the same numbers, their own row marked.
    page = await _sign_in(new_context, live_server, "anna@shop.example")
    await page.get_by_test_id("nav-numbers").click()
    numbers = page.get_by_test_id("numbers-page")
    await expect(row("team").get_by_test_id("hot-leads")).to_have_text("6")
    await expect(row("anna@shop.example")).to_have_class("is-me")
    await expect(row("anna@shop.example").get_by_test_id("median")).to_have_text("4 min 10 s")
    await expect(row("boris@shop.example").get_by_test_id("within-5")).to_have_text("33.3%")
