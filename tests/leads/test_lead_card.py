"""A lead's card: the profile, the score now with the rules behind it, the recent timeline."""

import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from app.domain.tables import Lead
from app.leads.endpoints import current_time
from app.leads.schemas import Why
from app.scoring.models import RuleSetVersion
from app.scoring.scorer import default_definition
from tests.factories import T0, bearer, send
from tests.leads.helpers import cold, event, id_of, identify, page


@pytest.fixture
def clock(app):
    """Sets the time the card's score is evaluated at."""

    def set_now(minutes: float) -> None:
        app.dependency_overrides[current_time] = lambda: T0 + timedelta(minutes=minutes)

    yield set_now
    app.dependency_overrides.pop(current_time, None)


async def card(client, site, lead_id):
    r = await client.get(f"/v1/leads/{lead_id}", headers=bearer(site.secret_key))
    assert r.status_code == 200, r.text
    return r.json()


NO_WHY = dict.fromkeys(Why.model_fields)


def with_id(message_id: str, body: dict) -> dict:
    return {**body, "messageId": message_id}


async def test_the_card_holds_the_profile(client, session, site, clock):
    clock(60)
    await send(
        client,
        site,
        identify("v", 0, email="olga@example.com", telegram="@olga", name="Olga", city="Kazan"),
        event("v", "Product Viewed", 1, product_id="f1", category="fridges", price=500),
        event("v", "Product Added", 2, product_id="f1", name="Fridge", price=500, quantity=2),
        event("v", "Subscribed", 3),
        event("v", "Order Completed", 4, revenue=1000),
        event("v", "Product Added", 5, product_id="k1", price=20),
        event("v", "Page Engaged", 6, engaged_seconds=120),
        page("v", 7, "https://shop.example/kettles"),
    )
    lead = await card(client, site, await id_of(session, site, "v"))
    assert lead["contacts"] == {"email": "olga@example.com", "telegram": "@olga"}
    assert lead["traits"]["name"] == "Olga"
    assert lead["identified"] is True
    assert lead["city"] == "Kazan"
    assert lead["interests"] == {"fridges": 1}
    assert [p["product_id"] for p in lead["products_viewed"]] == ["f1"]
    assert (lead["visits"], lead["page_views"], lead["events_count"]) == (1, 1, 8)
    assert lead["time_on_site_seconds"] == 120.0
    assert lead["cart"]["items"] == {"k1": {"product_id": "k1", "price": 20, "quantity": 1}}
    assert (lead["cart"]["item_count"], lead["cart"]["value"]) == (1, 20)
    assert (lead["orders"], lead["revenue"], lead["subscribed"]) == (1, 1000.0, True)
    assert datetime.fromisoformat(lead["first_seen_at"]) == T0
    assert datetime.fromisoformat(lead["last_seen_at"]) == T0 + timedelta(minutes=7)
    assert lead["last_url"] == "https://shop.example/kettles"
    assert (lead["status"], lead["lost_reason"], lead["note"]) == ("new", None, None)
    assert lead["merged_ids"] == []


async def test_the_breakdown_lists_the_rules_behind_the_score_with_their_events(
    client, session, site, clock
):
    await send(
        client,
        site,
        with_id("pv1", event("v", "Product Viewed", 0, product_id="a", category="tv")),
        with_id("pv2", event("v", "Product Viewed", 1, product_id="b", category="tv")),
        with_id("cr", event("v", "Contact Requested", 2, phone="+7 900")),
    )
    clock(32)
    lead = await card(client, site, await id_of(session, site, "v"))
    rules = {item["rule_id"]: item for item in lead["breakdown"]}
    assert set(rules) == {
        "product-viewed",
        "contact-requested",
        "contacts",
        "recency",
        "time-on-site",
        "contact-request",
    }
    viewed = rules["product-viewed"]
    assert (viewed["kind"], viewed["label"], viewed["events"]) == (
        "behaviour",
        "Viewed a product",
        2,
    )
    assert viewed["message_ids"] == ["pv2", "pv1"]
    assert viewed["points_raw"] == 6.0
    assert rules["contact-requested"]["message_ids"] == ["cr"]
    assert rules["contacts"] == {
        "rule_id": "contacts",
        "kind": "fit",
        "label": "Contacts left",
        "points_raw": 5.0,
        "points": 5.0,
        "events": 0,
        "message_ids": [],
        "hot_until": None,
        "why": {**NO_WHY, "criterion": "contacts", "field": "contacts", "value": ["phone"],
                "option": ["phone"], "coefficient": 0.5, "weight": 10.0},
        "text": "Contacts left: phone -> coefficient 0.5 x weight 10 = 5",
    }  # fmt: skip
    assert viewed["text"] == (
        "Viewed a product: 2 x 3 = 6, half-life 7 days, 6 at the last event, 31 minutes ago -> 5.99"
    )
    assert (viewed["why"]["value_at_last_event"], viewed["why"]["age"]) == (
        pytest.approx(3 * 2 ** (-1 / (7 * 24 * 60)) + 3),
        31 * 60.0,
    )
    assert rules["recency"]["text"] == (
        "Seen recently: last seen 30 minutes ago, in the band under 1 hour x 1 x weight 5 = 5"
    )
    hard = rules["contact-request"]
    assert (hard["kind"], hard["message_ids"]) == ("hard", ["cr"])
    assert datetime.fromisoformat(hard["hot_until"]) == T0 + timedelta(minutes=2, hours=24)
    assert lead["score"] == pytest.approx(sum(i["points"] for i in lead["breakdown"]), abs=0.05)
    assert lead["temperature"] == "hot"


async def test_the_score_is_evaluated_now_and_decays_from_the_last_event(
    client, session, site, clock
):
    await send(client, site, *[page("v", m) for m in range(4)])
    lead_id = await id_of(session, site, "v")
    clock(3)
    at_last_event = await card(client, site, lead_id)
    assert at_last_event["score"] == pytest.approx(at_last_event["score_at_last_event"])

    clock(3 + 7 * 24 * 60)  # one half-life later
    week_later = await card(client, site, lead_id)
    assert week_later["score_at_last_event"] == at_last_event["score_at_last_event"]
    before = {item["rule_id"]: item["points"] for item in at_last_event["breakdown"]}
    after = {item["rule_id"]: item["points"] for item in week_later["breakdown"]}
    assert before["page-view"] == pytest.approx(4.0, abs=0.01), (
        at_last_event["page_views"],
        at_last_event["events_count"],
        at_last_event["breakdown"],
        len(at_last_event["timeline"]),
    )
    assert after["page-view"] == pytest.approx(2.0, abs=0.01)
    assert "recency" in before
    assert "recency" not in after  # seen a week ago no longer counts as recently
    assert after["time-on-site"] == before["time-on-site"]  # facts do not decay
    assert week_later["score"] == pytest.approx(sum(after.values()), abs=0.05)
    assert week_later["score"] < at_last_event["score"]


async def test_a_hot_lead_left_alone_has_cooled_by_now(client, session, site, clock):
    await send(client, site, event("v", "Contact Requested", 0, phone="+7 900"))
    lead_id = await id_of(session, site, "v")
    clock(2 * 24 * 60)  # the 24 h hold is over, the points have decayed
    lead = await card(client, site, lead_id)
    assert (lead["temperature_at_last_event"], lead["temperature"]) == ("hot", "warm")
    assert lead["score"] < lead["score_at_last_event"]
    assert "contact-request" not in {item["rule_id"] for item in lead["breakdown"]}


async def test_a_lead_scored_by_an_older_rule_set_is_evaluated_with_the_active_one(
    client, session, site, clock
):
    await send(client, site, *[page("v", m) for m in range(3)])
    lead_id = await id_of(session, site, "v")
    definition = default_definition()
    for rule in definition["behaviour"]:
        if rule["id"] == "page-view":
            rule["points"] = 2
    session.add(RuleSetVersion(site_id=site.site.id, version=2, definition=definition))
    await session.commit()
    clock(3)

    lead = await card(client, site, lead_id)
    assert (lead["rule_set_version"], lead["active_rule_set_version"]) == (1, 2)
    assert lead["rule_set_outdated"] is True
    [views] = [item for item in lead["breakdown"] if item["rule_id"] == "page-view"]
    assert views["points_raw"] == 6.0  # three views at version 2's 2 points
    # Reading does not write: the stored score stays version 1's until the next event.
    stored = await session.scalar(select(Lead).where(Lead.id == uuid.UUID(lead["id"])))
    await session.refresh(stored)
    assert stored.rule_set_version == 1
    assert lead["score_at_last_event"] == stored.score


async def test_the_timeline_holds_the_last_50_events_newest_first(client, session, site):
    await send(
        client,
        site,
        *[with_id(f"m{i}", page("v", i, f"https://shop.example/p{i}")) for i in range(55)],
        with_id("late", event("v", "Product Viewed", 10.5, product_id="x", category="tv")),
    )
    lead = await card(client, site, await id_of(session, site, "v"))
    timeline = lead["timeline"]
    assert len(timeline) == 50
    assert [e["message_id"] for e in timeline[:2]] == ["m54", "m53"]
    assert timeline[0] == {
        "message_id": "m54",
        "type": "page",
        "name": None,
        "timestamp": timeline[0]["timestamp"],
        "url": "https://shop.example/p54",
        "properties": {"url": "https://shop.example/p54"},
    }
    assert datetime.fromisoformat(timeline[0]["timestamp"]) == T0 + timedelta(minutes=54)
    late = next(e for e in timeline if e["message_id"] == "late")
    assert (late["type"], late["name"]) == ("track", "Product Viewed")
    assert timeline.index(late) == 44  # between m10 and m11, by event time
    assert timeline[-1]["message_id"] == "m6"


async def test_a_page_url_that_is_not_text_is_no_url(client, session, site):
    """As at ingestion (the lead's last_url): the timeline shows no URL rather than failing."""
    await send(
        client,
        site,
        with_id("number", {**page("v", 0), "properties": {"url": 42}}),
        with_id("object", {**page("v", 1), "context": {"page": {"url": {"href": "/x"}}}}),
    )
    lead = await card(client, site, await id_of(session, site, "v"))
    assert {e["message_id"]: e["url"] for e in lead["timeline"]} == {
        "number": None,
        "object": None,
    }
    assert lead["last_url"] is None


async def test_a_merged_leads_id_answers_the_surviving_lead(client, session, site):
    await send(client, site, *cold("phone"), *cold("laptop", 5))
    await send(
        client,
        site,
        {"type": "identify", "anonymousId": "phone", "userId": "u1", "timestamp": T0.isoformat()},
        {"type": "identify", "anonymousId": "laptop", "userId": "u1", "timestamp": T0.isoformat()},
    )
    leads = list(await session.scalars(select(Lead).where(Lead.site_id == site.site.id)))
    [merged] = [lead for lead in leads if lead.merged_into_id is not None]
    [survivor] = [lead for lead in leads if lead.merged_into_id is None]

    through_old_id = await card(client, site, merged.id)
    assert through_old_id["id"] == str(survivor.id)
    assert through_old_id["merged_ids"] == [str(merged.id)]
    assert through_old_id["page_views"] == 2
    assert len(through_old_id["timeline"]) == 4  # both histories
    assert (await card(client, site, survivor.id))["id"] == str(survivor.id)


async def test_an_unknown_lead_is_404_and_a_malformed_id_422(client, site):
    r = await client.get(
        "/v1/leads/6f1c1d5e-0000-4000-8000-000000000000", headers=bearer(site.secret_key)
    )
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    r = await client.get("/v1/leads/not-an-id", headers=bearer(site.secret_key))
    assert (r.status_code, r.json()["code"]) == (422, "validation_error")
