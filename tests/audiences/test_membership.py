"""Audiences kept current: a visitor enters as events arrive (ingestion API) and leaves as the
score decays (the temperature refresher, driven by its clock), time conditions ride on the
lead's due time, and each move is an `audience.entered` / `audience.left` webhook."""

import uuid
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select

from app.audiences import jobs
from app.audiences.models import Audience, AudienceMember
from app.db import utcnow
from app.scoring import rescoring
from app.webhooks.models import WebhookMessage
from tests.factories import bearer, lead_by_anonymous_id, send
from tests.helpers import eventually
from tests.rules.helpers import publish, views, views_rule_set
from tests.webhooks.helpers import add_endpoint


async def create(client: Any, site: Any, name: str, **filters: Any) -> dict[str, Any]:
    r = await client.post(
        "/v1/audiences", headers=bearer(site.secret_key), json={"name": name, "filters": filters}
    )
    assert r.status_code == 201, r.text
    return r.json()


async def compute(app: Any, session: Any) -> None:
    """Run the membership jobs here, and wait for any the app's own background loop claimed
    first to finish: every audience ready."""
    context = app.state.background.context
    await jobs.compute_memberships(context, context.memberships)

    async def all_ready() -> bool:
        session.expire_all()
        states = set((await session.scalars(select(Audience.state))).all())
        await session.commit()
        return states <= {"ready"}

    await eventually(all_ready, timeout=10)


async def audience_messages(session: Any, name: str) -> list[tuple[str, str, str]]:
    """(type, audience name, lead id) of the messages queued for the audience `name` (not the
    site's starter audiences), in order."""
    session.expire_all()
    rows = await session.scalars(
        select(WebhookMessage)
        .where(WebhookMessage.event_type.like("audience.%"))
        .order_by(WebhookMessage.created_at)
    )
    out = [
        (m.event_type, m.payload["data"]["audience"]["name"], m.payload["data"]["lead_id"])
        for m in rows
        if m.payload["data"]["audience"]["name"] == name
    ]
    await session.commit()
    return out


async def lead_of(session: Any, site: Any, visitor: str) -> Any:
    """The lead's row as plain values (read, then the read ended)."""
    lead = await lead_by_anonymous_id(session, site.site.id, visitor)
    row = SimpleNamespace(
        id=str(lead.id),
        temperature=lead.temperature,
        last_seen_at=lead.last_seen_at,
        next_check_at=lead.next_check_at,
    )
    await session.commit()
    return row


async def members(client: Any, site: Any, audience: dict[str, Any]) -> list[str]:
    r = await client.get(f"/v1/audiences/{audience['id']}/members", headers=bearer(site.secret_key))
    assert r.status_code == 200, r.text
    return [m["lead_id"] for m in r.json()["data"]]


async def test_a_visitor_enters_as_events_arrive_and_leaves_as_the_score_decays(
    app, client, session, site
):
    # 10 points a view, warm at 30, halved every hour.
    await publish(client, site.secret_key, views_rule_set(decay={"half_life": "1h"}))
    await add_endpoint(client, site, "https://hooks.example.com/leadheat")
    warm = await create(client, site, "Warm fridges", temperature=["warm", "hot"],
                        interests=[{"category": "fridges", "min_views": 3}])  # fmt: skip
    assert warm["state"] == "computing"
    await compute(app, session)
    now = utcnow()

    await send(client, site, *views("v", 2, origin=now - timedelta(minutes=3)))
    assert await members(client, site, warm) == []
    await send(client, site, *views("v", 2, start=2, origin=now - timedelta(minutes=3)))
    lead = await lead_of(session, site, "v")
    assert lead.temperature == "warm"
    assert await members(client, site, warm) == [lead.id]
    assert await audience_messages(session, "Warm fridges") == [
        ("audience.entered", "Warm fridges", lead.id)
    ]

    # Decay: the refresher looks at the lead when it is due, and it cools and leaves.
    context = app.state.background.context
    later = now
    for _ in range(20):
        lead = await lead_of(session, site, "v")
        if lead.temperature == "cold":
            break
        assert lead.next_check_at is not None
        later = lead.next_check_at
        await rescoring.refresh_temperatures(context, later)
    assert lead.temperature == "cold"
    assert later - now < timedelta(hours=2)  # 40 points to under 30: within half an hour
    assert await members(client, site, warm) == []
    assert await audience_messages(session, "Warm fridges") == [
        ("audience.entered", "Warm fridges", lead.id),
        ("audience.left", "Warm fridges", lead.id),
    ]
    r = await client.get(f"/v1/audiences/{warm['id']}", headers=bearer(site.secret_key))
    assert (r.json()["state"], r.json()["members"]) == ("ready", 0)


async def test_last_seen_not_within_enters_at_the_lead_s_due_time(app, client, session, site):
    # No decay and no points: nothing but the audience gives the lead a due time.
    await publish(client, site.secret_key, views_rule_set(points=0))
    await add_endpoint(client, site, "https://hooks.example.com/leadheat")
    gone = await create(client, site, "Gone quiet", last_seen_not_within_hours=24, visits_min=1)
    await compute(app, session)
    now = utcnow()
    await send(client, site, *views("v", 1, origin=now - timedelta(minutes=1)))
    lead = await lead_of(session, site, "v")
    assert lead.last_seen_at is not None
    assert lead.next_check_at == lead.last_seen_at + timedelta(hours=24)
    assert await members(client, site, gone) == []

    context = app.state.background.context
    await rescoring.refresh_temperatures(context, lead.next_check_at - timedelta(minutes=1))
    assert await members(client, site, gone) == []  # not due yet: not looked at
    await rescoring.refresh_temperatures(context, lead.next_check_at)
    assert await members(client, site, gone) == [lead.id]
    assert await audience_messages(session, "Gone quiet") == [
        ("audience.entered", "Gone quiet", lead.id)
    ]
    lead = await lead_of(session, site, "v")
    assert lead.next_check_at is None  # nothing more will change with time alone

    # A new visit: out again at once, in the group's transaction.
    await send(client, site, *views("v", 1, start=5, origin=now + timedelta(days=2)))
    assert await members(client, site, gone) == []
    # (queued by the refresher at its clock, a day ahead: compared as a set)
    assert sorted(t for t, _, _ in await audience_messages(session, "Gone quiet")) == [
        "audience.entered",
        "audience.left",
    ]


async def test_the_job_computes_existing_leads_silently_and_an_edit_sends_the_moves(
    app, client, session, site
):
    await publish(client, site.secret_key, views_rule_set())
    await add_endpoint(client, site, "https://hooks.example.com/leadheat")
    now = utcnow()
    for visitor, count in (("a", 1), ("b", 2), ("c", 3)):
        await send(client, site, *views(visitor, count, origin=now - timedelta(minutes=5)))
    ids = {v: (await lead_of(session, site, v)).id for v in "abc"}
    two_views = [{"category": "fridges", "min_views": 2}]
    audience = await create(client, site, "Two views", interests=two_views)
    await compute(app, session)
    assert sorted(await members(client, site, audience)) == sorted([ids["b"], ids["c"]])
    assert (
        await audience_messages(session, "Two views") == []
    )  # the first members are the list, not news

    r = await client.patch(
        f"/v1/audiences/{audience['id']}",
        headers=bearer(site.secret_key),
        json={"filters": {"interests": [{"category": "fridges", "min_views": 1}], "visits_max": 1,
                          "score_max": 15}},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "computing"
    await compute(app, session)
    assert await members(client, site, audience) == [ids["a"]]
    moves = sorted((t, lead) for t, _, lead in await audience_messages(session, "Two views"))
    assert moves == sorted(
        [("audience.entered", ids["a"]), ("audience.left", ids["b"]), ("audience.left", ids["c"])]
    )
    session.expire_all()
    rows = (
        await session.scalars(
            select(AudienceMember).where(AudienceMember.audience_id == uuid.UUID(audience["id"]))
        )
    ).all()
    await session.commit()
    assert [str(m.lead_id) for m in rows] == [ids["a"]]


async def test_an_abandoned_cart_enters_after_an_hour_of_silence_and_leaves_after_a_week(
    app, client, session, site
):
    """The starter audience with two time conditions: each flip is the lead's next due time."""
    r = await client.get("/v1/audiences", headers=bearer(site.secret_key))
    cart = next(a for a in r.json()["data"] if a["name"] == "Abandoned cart this week")
    added = utcnow() - timedelta(minutes=1)
    product = {"product_id": "f1", "category": "fridges", "price": 499}
    await send(
        client,
        site,
        {"type": "track", "event": "Product Added", "anonymousId": "v", "messageId": "add-1",
         "timestamp": added.isoformat(), "properties": product},
    )  # fmt: skip
    lead = await lead_of(session, site, "v")
    assert await members(client, site, cart) == []
    context = app.state.background.context
    due = lead.next_check_at
    assert due is not None
    assert due <= lead.last_seen_at + timedelta(hours=1)  # the hour of silence (or earlier)
    while due < lead.last_seen_at + timedelta(hours=1):  # the rule set's own looks first
        await rescoring.refresh_temperatures(context, due)
        due = (await lead_of(session, site, "v")).next_check_at
    await rescoring.refresh_temperatures(context, due)
    assert await members(client, site, cart) == [lead.id]
    lead = await lead_of(session, site, "v")
    assert lead.next_check_at is not None
    while lead.next_check_at < added + timedelta(days=7):
        await rescoring.refresh_temperatures(context, lead.next_check_at)
        lead = await lead_of(session, site, "v")
        assert lead.next_check_at is not None
    assert await members(client, site, cart) == [lead.id]
    await rescoring.refresh_temperatures(context, lead.next_check_at)
    assert await members(client, site, cart) == []  # a week after the cart last changed


async def test_a_new_rule_set_moves_a_score_range_audience_without_a_temperature_change(
    app, client, session, site
):
    """Re-scoring after a publish re-checks the leads whose score moved, not only those whose
    temperature did: a score range follows the new rules at once."""
    await publish(client, site.secret_key, views_rule_set(points=10, warm=70, hot=90))
    scored = await create(client, site, "Score 30 to 50", score_min=30, score_max=50)
    await compute(app, session)
    await send(client, site, *views("v", 2, origin=utcnow() - timedelta(minutes=3)))
    lead = await lead_of(session, site, "v")
    assert (lead.temperature, await members(client, site, scored)) == ("cold", [])

    await publish(client, site.secret_key, views_rule_set(points=20, warm=70, hot=90))
    assert (await lead_of(session, site, "v")).temperature == "cold"  # 40: still cold
    assert await members(client, site, scored) == [lead.id]
    await publish(client, site.secret_key, views_rule_set(points=30, warm=70, hot=90))
    assert await members(client, site, scored) == []  # 60: out of the range, still cold
