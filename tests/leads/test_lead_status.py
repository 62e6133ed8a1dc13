"""Moving a lead through the sales funnel: new -> contacted -> qualified -> won, or lost with a
reason; lost and won leads can be reopened."""

from datetime import UTC, datetime, timedelta

import pytest

from app.leads.endpoints import current_time
from tests.factories import bearer, send
from tests.leads.helpers import cold, id_of

NOW = datetime(2026, 10, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
async def lead_id(client, session, site, app):
    app.dependency_overrides[current_time] = lambda: NOW
    await send(client, site, *cold("v"))
    yield await id_of(session, site, "v")
    app.dependency_overrides.pop(current_time, None)


async def patch(client, site, lead_id, body):
    return await client.patch(f"/v1/leads/{lead_id}", headers=bearer(site.secret_key), json=body)


async def moved(client, site, lead_id, body):
    r = await patch(client, site, lead_id, body)
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_lead_moves_forward_through_the_funnel(client, site, lead_id, app):
    for minutes, status in enumerate(("contacted", "qualified", "won")):
        now = NOW + timedelta(minutes=minutes)
        app.dependency_overrides[current_time] = lambda now=now: now
        lead = await moved(client, site, lead_id, {"status": status})
        assert lead["status"] == status
        assert datetime.fromisoformat(lead["status_changed_at"]) == now
    r = await client.get(f"/v1/leads/{lead_id}", headers=bearer(site.secret_key))
    assert r.json()["status"] == "won"


async def test_steps_can_be_skipped_forward(client, site, lead_id):
    assert (await moved(client, site, lead_id, {"status": "won"}))["status"] == "won"


async def test_a_lost_lead_records_its_reason_and_note(client, site, lead_id):
    lead = await moved(
        client,
        site,
        lead_id,
        {"status": "lost", "lost_reason": "nothing_in_budget", "note": "wanted instalments"},
    )
    assert (lead["status"], lead["lost_reason"], lead["note"]) == (
        "lost",
        "nothing_in_budget",
        "wanted instalments",
    )
    assert datetime.fromisoformat(lead["status_changed_at"]) == NOW
    listed = (await client.get("/v1/leads", headers=bearer(site.secret_key))).json()["data"]
    assert (listed[0]["status"], listed[0]["lost_reason"]) == ("lost", "nothing_in_budget")


@pytest.mark.parametrize(
    "reason",
    [
        "not_our_profile",
        "bought_elsewhere",
        "bought_from_competitor",
        "waited_too_long",
        "nothing_in_budget",
        "spam",
        "other",
    ],
)
async def test_every_lost_reason_is_accepted(client, site, lead_id, reason):
    lead = await moved(client, site, lead_id, {"status": "lost", "lost_reason": reason})
    assert lead["lost_reason"] == reason


async def test_reopening_a_lost_lead_clears_the_reason(client, site, lead_id):
    await moved(client, site, lead_id, {"status": "lost", "lost_reason": "spam", "note": "bot"})
    lead = await moved(client, site, lead_id, {"status": "new"})
    assert (lead["status"], lead["lost_reason"], lead["note"]) == ("new", None, None)


async def test_a_won_lead_can_be_reopened_or_lost(client, site, lead_id):
    await moved(client, site, lead_id, {"status": "won"})
    assert (await moved(client, site, lead_id, {"status": "new"}))["status"] == "new"
    await moved(client, site, lead_id, {"status": "won"})
    lead = await moved(client, site, lead_id, {"status": "lost", "lost_reason": "other"})
    assert lead["status"] == "lost"


async def test_a_note_alone_and_a_corrected_reason(client, site, lead_id):
    await moved(client, site, lead_id, {"status": "lost", "lost_reason": "bought_elsewhere"})
    lead = await moved(
        client, site, lead_id, {"status": "lost", "lost_reason": "bought_from_competitor"}
    )
    assert lead["lost_reason"] == "bought_from_competitor"
    lead = await moved(client, site, lead_id, {"note": "chose the shop next door"})
    assert (lead["lost_reason"], lead["note"]) == (
        "bought_from_competitor",
        "chose the shop next door",
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "lost"}, "lost_reason"),
        ({"lost_reason": "spam"}, "lost_reason"),
        ({"status": "contacted", "lost_reason": "spam"}, "lost_reason"),
        ({"status": "archived"}, "status"),
        ({"status": None}, "status"),
        ({"status": "lost", "lost_reason": "too_expensive"}, "lost_reason"),
        ({"note": "x" * 2001}, "note"),
        ({"colour": "red"}, "colour"),
        ({}, "status"),
    ],
)
async def test_an_invalid_change_is_422_naming_the_field(client, site, lead_id, body, field):
    r = await patch(client, site, lead_id, body)
    assert r.status_code == 422, r.text
    error = r.json()
    assert error["code"] == "validation_error"
    assert error["details"][0]["loc"] == ["body", field]
    lead = (await client.get(f"/v1/leads/{lead_id}", headers=bearer(site.secret_key))).json()
    assert (lead["status"], lead["lost_reason"]) == ("new", None)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (["contacted"], "new"),
        (["qualified"], "contacted"),
        (["won"], "qualified"),
        (["lost"], "contacted"),
    ],
)
async def test_moving_backwards_is_409(client, site, lead_id, path, status):
    for step in path:
        body = {"status": step, **({"lost_reason": "other"} if step == "lost" else {})}
        await moved(client, site, lead_id, body)
    r = await patch(client, site, lead_id, {"status": status})
    assert r.status_code == 409
    assert r.json()["code"] == "invalid_status_transition"
