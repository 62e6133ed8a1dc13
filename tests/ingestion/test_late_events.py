"""An event that arrives after a later one of its lead (a second device's client, an old batch
retried late) counts as a replay of the stored events counts it: its own visit, the time
between events, and the score re-scoring gives."""

import copy
from datetime import UTC, datetime, timedelta

from app.domain.lead_rows import lead_row
from app.domain.tables import Lead
from app.scoring import engine
from app.scoring.scorer import default_definition, rescore_from_history, rule_set_for_version
from tests.factories import T0, basic_auth, lead_by_anonymous_id, track

VISIT_TIMEOUT = timedelta(minutes=30)  # the default setting


async def page(client, site, at: datetime) -> None:
    r = await client.post(
        "/v1/page",
        auth=basic_auth(site.write_key),
        json={"anonymousId": "x", "timestamp": at.isoformat()},
    )
    assert r.status_code == 200, r.text


async def rescored(session, lead: Lead) -> engine.ScoreResult:
    profile = lead_row(copy.deepcopy({c.key: getattr(lead, c.key) for c in Lead.__table__.columns}))
    compiled = engine.compile_rule_set(rule_set_for_version(default_definition(), 1))
    conn = await session.connection()
    return await rescore_from_history(conn, profile, compiled, VISIT_TIMEOUT)


async def test_a_late_page_opens_its_own_visit_and_scores_as_a_replay(client, session, site):
    for hours in (0, 2, 1):  # the last one arrives late, from another device
        await page(client, site, T0 + timedelta(hours=hours))
    lead = await lead_by_anonymous_id(session, site.site.id, "x")
    assert lead.visits == 3  # was 2: the late page was counted in the current visit
    assert lead.session_seconds == 0
    assert lead.page_views == 3
    assert lead.first_seen_at == T0
    assert lead.last_seen_at == lead.visit_started_at == T0 + timedelta(hours=2)
    result = await rescored(session, lead)
    assert lead.score == result.score  # was 15.97 stored against 20.97 re-scored
    assert lead.temperature == result.temperature


async def test_a_late_event_inside_the_current_visit_keeps_the_replays_order(client, session, site):
    """Within the visit the count is the same, but what is newest is not the late event."""
    views = [
        track(
            "x",
            "Product Viewed",
            timestamp=(T0 + timedelta(minutes=m)).isoformat(),
            properties={"product_id": f"p{m}", "category": "fridges"},
        )
        for m in (0, 10, 5)
    ]
    for view in views:
        r = await client.post("/v1/track", auth=basic_auth(site.write_key), json=view)
        assert r.status_code == 200, r.text
    lead = await lead_by_anonymous_id(session, site.site.id, "x")
    assert [p["product_id"] for p in lead.products_viewed] == ["p10", "p5", "p0"]
    assert (lead.visits, lead.session_seconds) == (1, 600)
    assert lead.score == (await rescored(session, lead)).score


async def test_a_late_contact_request_turns_the_lead_hot_with_its_contact_deadline(
    client, session, site
):
    """The lead change of a rebuilt lead reaches the webhook consumer: hot, since the late
    event's time, with the first-contact deadline from then."""
    now = datetime.now(UTC).replace(microsecond=0)
    await page(client, site, now - timedelta(minutes=20))
    await page(client, site, now)
    lead = await lead_by_anonymous_id(session, site.site.id, "x")
    assert lead.temperature == "cold"
    late = track(
        "x",
        "Contact Requested",
        timestamp=(now - timedelta(minutes=10)).isoformat(),
        properties={"phone": "+7 900"},
    )
    r = await client.post("/v1/track", auth=basic_auth(site.write_key), json=late)
    assert r.status_code == 200, r.text
    session.expire_all()
    lead = await lead_by_anonymous_id(session, site.site.id, "x")
    assert lead.temperature == "hot"
    assert lead.contacts == {"phone": "+7 900"}
    assert lead.became_hot_at == now - timedelta(minutes=10)
    assert lead.contact_by == lead.became_hot_at + timedelta(minutes=5)
    assert lead.score == (await rescored(session, lead)).score
