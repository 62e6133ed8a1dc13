"""The lead's score and temperature are current the moment the event's request returns."""

from datetime import timedelta

import pytest

from app.scoring import engine
from app.scoring.models import RuleSetVersion
from app.scoring.scorer import default_definition, rule_set_for_version
from tests.factories import T0, at, lead_by_anonymous_id, send, track


async def test_a_bounce_is_cold_and_a_contact_request_is_hot_at_once(client, session, site):
    await send(client, site, {"type": "page", "anonymousId": "v", "timestamp": at(0)})
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    assert lead.temperature == "cold"
    assert 0 < lead.score < 30
    assert lead.rule_set_version == 1

    await send(
        client,
        site,
        track("v", "Contact Requested", timestamp=at(1), properties={"phone": "+7 900"}),
    )
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    assert lead.temperature == "hot"
    assert lead.became_hot_at == T0 + timedelta(minutes=1)


async def test_browsing_products_over_two_visits_warms_a_lead(client, session, site):
    views = [
        track(
            "v",
            "Product Viewed",
            timestamp=at(m),
            properties={"product_id": f"p{m}", "category": "fridges"},
        )
        for m in (0, 2, 4)
    ] + [
        track(
            "v",
            "Product Viewed",
            timestamp=at(m),
            properties={"product_id": f"p{m}", "category": "fridges"},
        )
        for m in (120, 122)
    ]
    await send(
        client,
        site,
        *views,
        track("v", "Page Engaged", timestamp=at(123), properties={"engaged_seconds": 540}),
    )
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    assert lead.visits == 2
    assert lead.temperature == "warm"


async def test_the_stored_score_equals_a_replay_of_the_stored_events(client, session, site):
    events = [
        track(
            "v", "Product Viewed", timestamp=at(0), properties={"category": "fridges", "price": 500}
        ),
        track("v", "Product Added", timestamp=at(3), properties={"product_id": "f1", "price": 500}),
        {"type": "identify", "anonymousId": "v", "timestamp": at(4), "traits": {"email": "a@b.c"}},
        track("v", "Checkout Started", timestamp=at(5)),
    ]
    for event in events:  # one request each: incremental scoring
        await send(client, site, event)
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    compiled = engine.compile_rule_set(rule_set_for_version(default_definition(), 1))
    state = engine.empty_state()
    result = None
    facts = engine.LeadFacts(
        contacts=lead.contacts,
        visits=lead.visits,
        last_seen_at=lead.last_seen_at,
        interests=lead.interests,
        page_views=lead.page_views,
        time_on_site_seconds=lead.session_seconds,
    )
    for i, e in enumerate(events):
        result = engine.apply_event(
            compiled,
            state,
            engine.ScoringEvent(
                message_id=f"m{i}",
                kind=e.get("event", e["type"]),
                properties=e.get("properties", {}),
                at=T0 + timedelta(minutes=[0, 3, 4, 5][i]),
                visit=1,
            ),
            facts,
        )
        state = result.state
    assert result is not None
    assert lead.score == result.score
    assert lead.temperature == result.temperature


@pytest.mark.parametrize(
    "survivor_first_seen_with_the_merge",
    [False, True],
    ids=["survivor-stored-before", "survivor-first-seen-in-the-merging-batch"],
)
async def test_merging_two_leads_rescores_the_survivor_from_all_history(
    client, session, site, survivor_first_seen_with_the_merge
):
    # The stored lead's cart add; then the user's checkout and the identify linking the two,
    # in two requests (the user's lead is stored first) or in one batch (it is first seen
    # there). The user's lead survives; its score counts both leads' events.
    await send(
        client,
        site,
        track("phone", "Product Added", timestamp=at(0), properties={"product_id": "f1"}),
    )
    checkout = {"type": "track", "event": "Checkout Started", "userId": "u1", "timestamp": at(1)}
    identify = {
        "type": "identify",
        "anonymousId": "phone",
        "userId": "u1",
        "timestamp": at(2),
        "traits": {"phone": "1"},
    }
    if survivor_first_seen_with_the_merge:
        await send(client, site, checkout, identify)
    else:
        await send(client, site, checkout)
        await send(client, site, identify)
    lead = await lead_by_anonymous_id(session, site.site.id, "phone")
    assert lead.user_id == "u1"
    assert lead.score_state is not None
    rules = lead.score_state["rules"]
    assert rules, "the survivor's score must include both leads' events"
    counted = {rule_id for rule_id, entry in rules.items() if entry["n"]}
    assert len(counted) >= 2
    assert {"product-added", "checkout-started"} <= counted


async def test_a_lead_scored_by_an_old_version_is_rescored_before_new_events(client, session, site):
    await send(
        client,
        site,
        track("v", "Product Viewed", timestamp=at(0), properties={"category": "fridges"}),
    )
    # Publish version 2, in which a product view is worth exactly 50 points and nothing else counts.
    definition = {
        "name": "Fifty per view",
        "behaviour": [
            {
                "id": "view",
                "label": "View",
                "event": "Product Viewed",
                "points": 50,
                "frequency": "every_time",
            }
        ],
        "thresholds": {"warm": 30, "hot": 90},
    }
    session.add(RuleSetVersion(site_id=site.site.id, version=2, definition=definition))
    await session.commit()
    await send(client, site, {"type": "page", "anonymousId": "v", "timestamp": at(1)})
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    assert lead.rule_set_version == 2
    assert lead.score == pytest.approx(50, abs=0.01)
    assert lead.temperature == "warm"


def test_editing_a_copy_of_the_default_rule_set_leaves_the_default_alone():
    edited = default_definition()
    edited["behaviour"][0]["points"] = 999
    assert default_definition()["behaviour"][0]["points"] != 999
