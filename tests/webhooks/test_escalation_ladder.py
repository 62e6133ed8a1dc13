"""The escalation ladder acts: a hot lead nobody contacts is reminded to its owner at
contact_by, handed to the next manager on duty at 10 minutes, the admins alerted at 15 and the
lead marked at risk at 30, each step's message naming the people to alert (`notify`); a
contact recorded at any point stops the rest. Time is driven by the timers' due_at (the
test's clock), never waited for."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.config import Settings
from app.domain.tables import Lead
from app.team import assignment
from app.webhooks.models import LeadTimer
from app.webhooks.timers import TimerService
from tests.factories import bearer, lead_by_anonymous_id, send, track
from tests.team.helpers import ALL_WEEK, awake_zone, make_user
from tests.webhooks.conftest import webhook_settings
from tests.webhooks.helpers import add_endpoint, messages_of

LADDER = [
    (5, "lead.first_contact_overdue", "remind_owner"),
    (10, "lead.reassigned", "hand_over"),
    (15, "lead.first_contact_escalated", "alert_admins"),
    (30, "lead.at_risk", "mark_at_risk"),
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"run_background": False})


@pytest.fixture
async def timers(db_engine, clock, monkeypatch):
    monkeypatch.setattr("app.webhooks.consumer.utcnow", clock)  # ingestion's clock too
    return TimerService(db_engine, webhook_settings(), now=clock)


@pytest.fixture
async def team(client, session, site):
    return await make_team(client, session, site)


async def make_team(client, session, site):
    await add_endpoint(client, site, "https://crm.example.com/hooks")
    zone = awake_zone()
    anna = await make_user(
        session, site, "manager", "anna@shop.example", working_hours=ALL_WEEK, time_zone=zone
    )
    boris = await make_user(
        session, site, "manager", "boris@shop.example", working_hours=ALL_WEEK, time_zone=zone
    )
    boss = await make_user(session, site, "admin", "boss@shop.example")
    return anna.id, boris.id, boss.id  # (the objects expire with the session)


async def ladder_messages(session) -> list[tuple[str, dict]]:
    return [
        (m.event_type, m.payload["data"])
        for m in await messages_of(session)
        if m.event_type not in ("lead.hot", "lead.temperature_changed", "lead.identified")
    ]


async def test_nobody_acts_and_the_ladder_runs_in_order(client, session, site, team, clock, timers):
    anna, boris, boss = team
    hot_at = clock.now.replace(microsecond=0)
    await send(client, site, track("v", "Contact Requested", timestamp=hot_at.isoformat()))
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    lead_id, first = lead.id, lead.owner_id
    assert first in (anna, boris)
    second = boris if first == anna else anna
    clock.now = hot_at + timedelta(minutes=4, seconds=59)
    await timers.run_once()
    assert await ladder_messages(session) == []

    expected_notify = {
        "remind_owner": [first],
        "hand_over": [first, second],
        "alert_admins": [boss],
        "mark_at_risk": [second, boss],
    }
    for minute, event_type, step in LADDER:
        clock.now = hot_at + timedelta(minutes=minute)
        await timers.run_once()
        (fresh_type, data), *more = (await ladder_messages(session))[-1:]
        assert (fresh_type, data["step"], more) == (event_type, step, [])
        assert data["notify"] == [str(i) for i in expected_notify[step]]
        assert data["mark_minutes"] == minute
    messages = dict(await ladder_messages(session))
    assert len(messages) == 4
    handed = messages["lead.reassigned"]
    assert handed["previous_owner"]["id"] == str(first)
    assert handed["owner"]["id"] == str(second)
    assert messages["lead.at_risk"]["at_risk_reason"] == "waited_too_long"
    assert messages["lead.at_risk"]["owner"]["id"] == str(second)
    session.expire_all()
    stored = await session.get(Lead, lead_id)
    assert stored.owner_id == second
    # Polls (updated_since, ETags) see the handover and the at-risk mark.
    assert stored.updated_at == hot_at + timedelta(minutes=30)

    r = await client.get(f"/v1/leads/{lead_id}", headers=bearer(site.secret_key))
    assert r.status_code == 200, r.text
    card = r.json()
    assert card["at_risk"]["reason"] == "waited_too_long"
    assert [(s["step"], s["status"]) for s in card["escalation"]] == [
        (step, "fired") for _, _, step in LADDER
    ]
    r = await client.get("/v1/leads", headers=bearer(site.secret_key))
    assert [x["at_risk"]["reason"] for x in r.json()["data"]] == ["waited_too_long"]
    clock.advance(days=1)
    assert await timers.run_once() == 0


@pytest.mark.parametrize("contacted_after", [0, 7, 12])
async def test_a_contact_at_any_point_stops_the_rest(
    client, session, site, team, clock, timers, contacted_after
):
    hot_at = clock.now.replace(microsecond=0)
    await send(client, site, track("v", "Contact Requested", timestamp=hot_at.isoformat()))
    lead_id = (await lead_by_anonymous_id(session, site.site.id, "v")).id
    for minute, _, _ in LADDER:
        if minute > contacted_after:
            break
        clock.now = hot_at + timedelta(minutes=minute)
        await timers.run_once()
    before = await ladder_messages(session)
    assert len(before) == sum(minute <= contacted_after for minute, _, _ in LADDER)
    r = await client.post(
        f"/v1/leads/{lead_id}/contacts", headers=bearer(site.secret_key), json={"channel": "phone"}
    )
    assert r.status_code == 201, r.text
    clock.now = hot_at + timedelta(hours=2)
    assert await timers.run_once() == 0
    assert await ladder_messages(session) == before
    steps = {t.kind: t.status for t in await session.scalars(select(LeadTimer))}
    assert steps == {
        step: "fired" if minute <= contacted_after else "cancelled" for minute, _, step in LADDER
    }
    card = (await client.get(f"/v1/leads/{lead_id}", headers=bearer(site.secret_key))).json()
    assert card["at_risk"] is None
    assert {s["step"]: s["status"] for s in card["escalation"]} == steps


async def test_a_step_whose_lead_or_site_is_busy_waits_for_the_next_pass(
    db_engine, client, session, site, clock, timers
):
    if db_engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: nothing is held while the loop runs")
    await make_team(client, session, site)  # after the skip: people take a while to make
    hot_at = clock.now.replace(microsecond=0)
    await send(client, site, track("v", "Contact Requested", timestamp=hot_at.isoformat()))
    lead_id = (await lead_by_anonymous_id(session, site.site.id, "v")).id
    clock.now = hot_at + timedelta(minutes=5)
    async with db_engine.connect() as other:
        await other.begin()  # a contact being recorded holds the lead...
        await other.execute(select(Lead.id).where(Lead.id == lead_id).with_for_update())
        # ...and then waits for its timers: the loop must not wait for the lead.
        assert await asyncio.wait_for(timers.run_once(), 10) == 0
        await other.rollback()
    assert await timers.run_once() == 1
    clock.now = hot_at + timedelta(minutes=10)
    async with db_engine.connect() as other:
        await other.begin()  # an ingestion group assigning for the site holds its lock
        await assignment.lock_site(other, site.site.id)
        assert await asyncio.wait_for(timers.run_once(), 10) == 0
        await other.rollback()
    assert await timers.run_once() == 1
    assert [t for t, _ in await ladder_messages(session)] == [
        "lead.first_contact_overdue",
        "lead.reassigned",
    ]
