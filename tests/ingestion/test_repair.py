"""A failure after validation never refuses valid events: they are stored, the affected leads
are marked, and the repair job rebuilds them from their stored events (profile, score, and
the webhook side: a lead that turned hot gets its contact deadline and timers)."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.config import Settings
from app.domain.tables import Lead
from app.ingestion.repair_worker import repair_due
from app.ingestion.repairs import LeadRepair
from app.scoring import engine
from app.scoring.scorer import LeadScorer, facts_from_profile
from app.webhooks.consumer import WebhookConsumer
from app.webhooks.models import LeadTimer
from tests.conftest import make_settings
from tests.factories import at, lead_by_anonymous_id, send, stored_events

PROFILE_FIELDS = (
    "visits",
    "page_views",
    "events_count",
    "session_seconds",
    "engaged_seconds",
    "orders",
    "revenue",
    "identified",
    "city",
    "country",
    "last_url",
    "contacts",
    "traits",
    "interests",
    "products_viewed",
    "cart",
    "subscribed",
    "first_seen_at",
    "last_seen_at",
    "visit_started_at",
    "temperature",
)


@pytest.fixture
def settings(database_url: str) -> Settings:
    # The test runs the repair job itself, with its own clock.
    return make_settings(database_url, run_background=False)


def journey(anonymous_id: str, start: datetime) -> list[dict]:
    """A visitor who views a fridge, adds it to the cart and asks to be called: hot."""
    url = {"page": {"url": "https://shop.example/fridges/f1"}}
    fridge = {"product_id": "f1", "name": "Fridge", "category": "fridges", "price": 499}
    phone = {"phone": "+7 900"}
    return [
        {"type": "page", "anonymousId": anonymous_id, "messageId": f"{anonymous_id}-1",
         "timestamp": at(0, origin=start), "context": url},
        {"type": "track", "event": "Product Viewed", "anonymousId": anonymous_id,
         "messageId": f"{anonymous_id}-2", "timestamp": at(1, origin=start), "properties": fridge},
        {"type": "track", "event": "Product Added", "anonymousId": anonymous_id,
         "messageId": f"{anonymous_id}-3", "timestamp": at(2, origin=start), "properties": fridge},
        {"type": "track", "event": "Contact Requested", "anonymousId": anonymous_id,
         "messageId": f"{anonymous_id}-4", "timestamp": at(3, origin=start), "properties": phone},
    ]  # fmt: skip


def page(anonymous_id: str, message_id: str) -> dict:
    return {"type": "page", "anonymousId": anonymous_id, "messageId": message_id}


async def lead_row(session, site, anonymous_id: str) -> dict:
    lead = await lead_by_anonymous_id(session, site.site.id, anonymous_id)
    return {c.key: getattr(lead, c.key) for c in Lead.__table__.columns}


async def mark_of(session, lead_id):
    session.expire_all()
    return await session.get(LeadRepair, lead_id)


async def test_a_lead_whose_scoring_fails_is_stored_marked_and_repaired(
    app, client, session, site, monkeypatch
):
    real_apply = LeadScorer.apply

    def faulty(self, profile, event, now):
        if event.anonymous_id == "victim":
            raise RuntimeError("a scoring bug on this visitor's events")
        real_apply(self, profile, event, now)

    def faulty_replay(*args, **kwargs):
        raise RuntimeError("the same bug in the replay")

    monkeypatch.setattr(LeadScorer, "apply", faulty)
    monkeypatch.setattr(engine, "replay", faulty_replay)  # only the repair replays here
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    batch = [page("a", "a-1"), *journey("victim", start), page("b", "b-1")]
    await send(client, site, *batch)

    stored = {e.message_id for e in await stored_events(session, site.site.id)}
    assert stored == {e["messageId"] for e in batch}
    for other in ("a", "b"):  # folded and scored at once
        lead = await lead_by_anonymous_id(session, site.site.id, other)
        assert (lead.events_count, lead.rule_set_version) == (1, 1)
        assert await mark_of(session, lead.id) is None
    victim = await lead_by_anonymous_id(session, site.site.id, "victim")
    victim_id = victim.id
    assert victim.events_count == 0  # not folded: a new lead, written blank
    mark = await mark_of(session, victim_id)
    assert mark.temperature_before is None  # new: the repair's change is a new lead's
    assert "scoring bug" in mark.error
    assert app.state.ingest_pipeline.stats["leads_marked_for_repair"] == 1

    # While the fault lasts, the repair fails too: the lead stays marked, retried later.
    context = app.state.background.context
    now = datetime.now(UTC)
    assert await repair_due(context, now) == 0
    mark = await mark_of(session, victim_id)
    assert mark.attempts == 1
    assert mark.due_at > now
    assert "replay" in mark.error
    monkeypatch.undo()
    assert await repair_due(context, now) == 0  # not due yet
    later = now + timedelta(minutes=5)
    assert await repair_due(context, later) == 1
    assert await mark_of(session, victim_id) is None

    # The same journey, folded by ingestion in the normal way, gives the same lead.
    await send(client, site, *journey("twin", start))
    repaired = await lead_row(session, site, "victim")
    twin_row = await lead_row(session, site, "twin")
    for field in PROFILE_FIELDS:
        assert repaired[field] == twin_row[field], field
    assert repaired["temperature"] == "hot"
    assert repaired["scored_at"] == later
    # Its score is a replay of its stored events: the twin's state, built event by event at
    # ingestion, evaluated at the same moment, gives the same score.
    async with app.state.engine.connect() as conn:
        compiled = (await app.state.rule_sets.get_many(conn, [site.site.id]))[site.site.id]
    result = engine.evaluate(compiled, twin_row["score_state"], facts_from_profile(twin_row), later)
    assert repaired["score"] == result.score
    # The webhook side ran for the repaired lead: it turned hot, so it has a contact deadline
    # and its escalation ladder's timers.
    assert repaired["contact_by"] is not None
    query = select(LeadTimer).where(LeadTimer.lead_id == repaired["id"])
    timers = (await session.scalars(query)).all()
    assert {t.kind for t in timers} >= {"remind_owner", "mark_at_risk", "cart_abandoned"}


async def test_a_consumer_failure_stores_the_request_and_marks_its_leads(
    app, client, session, site, monkeypatch
):
    real_call = WebhookConsumer.__call__

    async def faulty(self, conn, changes):
        if any(e.anonymous_id == "victim" for c in changes for e in c.events):
            raise RuntimeError("a consumer bug")
        await real_call(self, conn, changes)

    monkeypatch.setattr(WebhookConsumer, "__call__", faulty)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    batch = [page("a", "a-1"), *journey("victim", start)]
    await send(client, site, *batch)
    assert len(await stored_events(session, site.site.id)) == len(batch)
    assert app.state.ingest_pipeline.stats["unfolded_submissions"] == 1
    # The whole request went the careful way: both of its leads wait for the repair.
    leads = [await lead_row(session, site, a) for a in ("a", "victim")]
    assert [lead["events_count"] for lead in leads] == [0, 0]
    assert all([await mark_of(session, lead["id"]) for lead in leads])
    # Another request meanwhile is stored the normal way.
    await send(client, site, page("c", "c-1"))
    assert (await lead_row(session, site, "c"))["events_count"] == 1

    monkeypatch.undo()
    assert await repair_due(app.state.background.context, datetime.now(UTC)) == 2
    a, victim = [await lead_row(session, site, x) for x in ("a", "victim")]
    assert (a["events_count"], victim["events_count"]) == (1, 4)
    assert victim["temperature"] == "hot"
    assert victim["contact_by"] is not None


async def test_a_lead_merged_before_its_repair_hands_the_mark_to_the_survivor(
    app, client, session, site, monkeypatch
):
    real_apply = LeadScorer.apply

    def faulty(self, profile, event, now):
        if event.anonymous_id == "victim":
            raise RuntimeError("a scoring bug")
        real_apply(self, profile, event, now)

    monkeypatch.setattr(LeadScorer, "apply", faulty)
    await send(client, site, page("victim", "v-1"))
    victim_id = (await lead_by_anonymous_id(session, site.site.id, "victim")).id
    monkeypatch.undo()
    # The customer logs in: an identify with the user id on another device's lead first,
    login = {"type": "identify", "userId": "u1", "traits": {"email": "u@x.example"}}
    await send(client, site, login | {"anonymousId": "other", "messageId": "i-1"})
    # ...then the victim's device: the victim's lead merges into the user's.
    await send(client, site, login | {"anonymousId": "victim", "messageId": "i-2"})
    survivor_id = (await lead_by_anonymous_id(session, site.site.id, "other")).id
    session.expire_all()
    assert (await session.get(Lead, victim_id)).merged_into_id == survivor_id
    assert await repair_due(app.state.background.context, datetime.now(UTC)) == 1
    assert await mark_of(session, victim_id) is None
    assert await mark_of(session, survivor_id) is None
    survivor = await lead_row(session, site, "other")
    assert survivor["events_count"] == 3  # its own identify, the victim's page and identify
