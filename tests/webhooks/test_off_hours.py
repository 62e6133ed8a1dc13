"""Off hours, a site setting: with `next_opening`, a lead that turns hot while no manager works
calls nobody (not even the person on call); its clock, contact_by and the site's own ladder
start at the earliest manager's next opening, where the lead is assigned. The settings are the
admins' (`/v1/team/settings`), validated."""

from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import select

from app.config import Settings
from app.team.schemas import WEEKDAYS
from app.webhooks.models import LeadTimer
from app.webhooks.timers import TimerService
from tests.factories import bearer, lead_by_anonymous_id, send, track
from tests.team.helpers import make_token, make_user, pat
from tests.webhooks.conftest import webhook_settings
from tests.webhooks.helpers import add_endpoint, messages_of


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"run_background": False})


@pytest.fixture
async def timers(db_engine, clock, monkeypatch):
    monkeypatch.setattr("app.webhooks.consumer.utcnow", clock)  # ingestion's clock too
    return TimerService(db_engine, webhook_settings(), now=clock)


async def test_the_clock_and_the_ladder_start_at_the_next_opening(
    client, session, site, clock, timers
):
    await add_endpoint(client, site, "https://crm.example.com/hooks")
    tomorrow = (clock.now + timedelta(days=1)).date()
    opening = datetime.combine(tomorrow, time(9, 0), UTC)
    hours = {WEEKDAYS[tomorrow.weekday()]: {"start": "09:00", "end": "18:00"}}
    anna = (await make_user(session, site, "manager", "anna@shop.example", working_hours=hours)).id
    await make_user(session, site, "admin", "boss@shop.example", on_call=True)
    ladder = [
        {"after_minutes": 20, "action": "mark_at_risk"},
        {"after_minutes": 3, "action": "remind_owner"},
    ]
    r = await client.put(
        "/v1/team/settings",
        headers=bearer(site.secret_key),
        json={"off_hours": "next_opening", "ladder": ladder},
    )
    assert r.status_code == 200, r.text
    assert r.json()["ladder"] == ladder[::-1]  # in the order of their marks

    hot_at = clock.now.replace(microsecond=0)
    await send(client, site, track("v", "Contact Requested", timestamp=hot_at.isoformat()))
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    lead_id = lead.id
    assert lead.owner_id is None  # the person on call is not called
    assert lead.contact_by == opening + timedelta(minutes=5)
    due = {t.kind: t.due_at for t in await session.scalars(select(LeadTimer))}
    assert due == {
        "assign_at_opening": opening,
        "remind_owner": opening + timedelta(minutes=3),
        "mark_at_risk": opening + timedelta(minutes=20),
    }
    clock.now = opening - timedelta(seconds=1)
    assert await timers.run_once() == 0

    clock.now = opening
    assert await timers.run_once() == 1
    (assigned,) = await messages_of(session, "lead.reassigned")
    data = assigned.payload["data"]
    assert (data["step"], data["previous_owner"], data["notify"]) == (
        "assign_at_opening",
        None,
        [str(anna)],
    )
    assert data["owner"]["id"] == str(anna)
    clock.now = opening + timedelta(minutes=3)
    await timers.run_once()
    (reminder,) = await messages_of(session, "lead.first_contact_overdue")
    assert reminder.payload["data"]["notify"] == [str(anna)]
    r = await client.get(f"/v1/leads/{lead_id}", headers=bearer(site.secret_key))
    assert r.json()["owner"]["id"] == str(anna)


async def test_the_settings_are_the_admins_and_validated(client, session, site):
    r = await client.get("/v1/team/settings", headers=bearer(site.secret_key))
    assert r.status_code == 200
    assert r.json() == {
        "off_hours": "on_call",
        "ladder": [
            {"after_minutes": 5, "action": "remind_owner"},
            {"after_minutes": 10, "action": "hand_over"},
            {"after_minutes": 15, "action": "alert_admins"},
            {"after_minutes": 30, "action": "mark_at_risk"},
        ],
    }
    for body in (
        {"ladder": [{"after_minutes": 5, "action": "remind_owner"}] * 2},
        {"ladder": [{"after_minutes": 5, "action": "call_the_police"}]},
        {"ladder": [{"after_minutes": 0, "action": "remind_owner"}]},
        {"off_hours": "never"},
        {"surprise": True},
    ):
        r = await client.put("/v1/team/settings", headers=bearer(site.secret_key), json=body)
        assert r.status_code == 422, body
        assert r.json()["code"] == "validation_error", r.json()
    manager = await make_user(session, site, "manager", "anna@shop.example")
    r = await client.put(
        "/v1/team/settings", headers=pat(await make_token(session, manager)), json={}
    )
    assert r.status_code == 403
    r = await client.put("/v1/team/settings", headers=bearer(site.secret_key), json={"ladder": []})
    assert r.json() == {"off_hours": "on_call", "ladder": []}
    r = await client.get("/v1/team/settings", headers=bearer(site.secret_key))
    assert r.json()["ladder"] == []
