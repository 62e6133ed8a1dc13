"""Deadlines: a hot lead nobody contacts is overdue at contact_by and escalates at the marks;
a recorded contact stops the clock; carts without an order are abandoned, with at most three
follow-ups and none after an order or an unsubscribe; identified leads are announced."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.config import Settings
from app.webhooks.models import LeadTimer, WebhookMessage
from app.webhooks.timers import CART_KINDS, TimerService, cart_episode
from tests.factories import bearer, lead_by_anonymous_id, send, track
from tests.webhooks.conftest import webhook_settings
from tests.webhooks.helpers import add_endpoint, message_types, messages_of


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"run_background": False})


@pytest.fixture
async def timers(db_engine, clock, monkeypatch):
    monkeypatch.setattr("app.webhooks.consumer.utcnow", clock)  # ingestion's clock too
    return TimerService(db_engine, webhook_settings(), now=clock)


@pytest.fixture
async def endpoint(client, site):
    return await add_endpoint(client, site, "https://crm.example.com/hooks")


async def new_types(session, seen: list[str]) -> list[str]:
    types = await message_types(session)
    fresh = types[len(seen) :]
    seen[:] = types
    return fresh


async def test_overdue_then_escalations_at_the_marks(
    client, session, site, endpoint, clock, timers
):
    hot_at = clock.now.replace(microsecond=0)
    await send(client, site, track("v", "Contact Requested", timestamp=hot_at.isoformat()))
    seen: list[str] = []
    assert sorted(await new_types(session, seen)) == ["lead.hot", "lead.temperature_changed"]
    clock.now = hot_at + timedelta(minutes=4, seconds=59)
    await timers.run_once()
    assert await new_types(session, seen) == []
    for minute, expected in [
        (5, "lead.first_contact_overdue"),
        (10, "lead.first_contact_escalated"),  # nobody on duty to hand it to
        (15, "lead.first_contact_escalated"),
        (30, "lead.at_risk"),
    ]:
        clock.now = hot_at + timedelta(minutes=minute)
        await timers.run_once()
        assert await new_types(session, seen) == [expected]
    messages = list(
        await session.scalars(select(WebhookMessage).order_by(WebhookMessage.created_at))
    )
    marks = [m.payload["data"].get("mark_minutes") for m in messages[2:]]
    assert marks == [5, 10, 15, 30]
    assert messages[2].payload["data"]["contact_by"] == (hot_at + timedelta(minutes=5)).isoformat()
    clock.advance(days=1)
    assert await timers.run_once() == 0


async def test_recording_a_contact_stops_the_clock(client, session, site, endpoint, clock, timers):
    hot_at = clock.now.replace(microsecond=0)
    await send(client, site, track("v", "Contact Requested", timestamp=hot_at.isoformat()))
    lead_id = (await lead_by_anonymous_id(session, site.site.id, "v")).id
    clock.now = hot_at + timedelta(minutes=6)
    await timers.run_once()
    contacted_at = hot_at + timedelta(minutes=7)
    r = await client.post(
        f"/v1/leads/{lead_id}/contacts",
        headers=bearer(site.secret_key),
        json={"channel": "phone", "by": "Anna", "at": contacted_at.isoformat()},
    )
    assert r.status_code == 201, r.text
    assert r.json()["lead_status"] == "contacted"
    assert r.json()["seconds_to_first_contact"] == 420
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    assert lead.first_contacted_at == contacted_at
    assert lead.status == "contacted"
    clock.advance(hours=1)
    assert await timers.run_once() == 0
    types = await message_types(session)
    assert "lead.first_contact_escalated" not in types
    assert types.count("lead.first_contact_overdue") == 1
    statuses = {t.mark: t.status for t in await session.scalars(select(LeadTimer))}
    assert statuses == {5: "fired", 10: "cancelled", 15: "cancelled", 30: "cancelled"}

    r = await client.post(
        f"/v1/leads/{lead_id}/contacts", headers=bearer(site.secret_key), json={"channel": "fax"}
    )
    assert r.status_code == 422
    other = "00000000-0000-0000-0000-000000000000"
    r = await client.post(
        f"/v1/leads/{other}/contacts", headers=bearer(site.secret_key), json={"channel": "email"}
    )
    assert r.status_code == 404


def identify_body(visitor: str, traits: dict) -> dict:
    return {"type": "identify", "anonymousId": visitor, "traits": traits}


def cart_add(visitor: str, product: str = "fridge-1") -> dict:
    props = {"product_id": product, "price": 499, "category": "fridges"}
    return track(visitor, "Product Added", properties=props)


async def test_an_idle_cart_is_abandoned_with_at_most_three_follow_ups(
    client, session, site, endpoint, clock, timers
):
    await send(client, site, cart_add("v"))
    seen = await message_types(session)
    clock.advance(minutes=59)
    await timers.run_once()
    assert await new_types(session, seen) == []
    await send(client, site, track("v", "Product Viewed"))  # activity pushes it back
    clock.advance(minutes=2)
    await timers.run_once()
    assert await new_types(session, seen) == []
    clock.advance(minutes=60)
    await timers.run_once()
    assert await new_types(session, seen) == ["cart.abandoned"]
    follow_ups = []
    for _ in range(10):
        clock.advance(days=1)
        await timers.run_once()
        follow_ups += await new_types(session, seen)
    assert follow_ups == ["cart.follow_up"] * 3
    messages = await messages_of(session, "cart.follow_up")
    assert [m.payload["data"]["follow_up"] for m in messages] == [1, 2, 3]
    assert messages[0].payload["data"]["cart"]["items"]["fridge-1"]["quantity"] == 1


@pytest.mark.parametrize("stop", ["Order Completed", "Unsubscribed"])
async def test_no_follow_up_after_an_order_or_an_unsubscribe(
    client, session, site, endpoint, clock, timers, stop
):
    await send(client, site, cart_add("v"), track("v", "Cart Abandoned"))
    await timers.run_once()  # the tracker's report is acted on at once
    assert (await message_types(session)).count("cart.abandoned") == 1
    await send(client, site, track("v", stop, properties={"revenue": 499}))
    for _ in range(8):
        clock.advance(days=1)
        await timers.run_once()
    assert "cart.follow_up" not in await message_types(session)


async def test_an_order_before_the_deadline_means_no_abandonment(
    client, session, site, endpoint, clock, timers
):
    await send(
        client, site, cart_add("v"), track("v", "Order Completed", properties={"revenue": 1})
    )
    clock.advance(hours=2)
    await timers.run_once()
    assert "cart.abandoned" not in await message_types(session)


@pytest.mark.parametrize("stop", ["Order Completed", "Unsubscribed"])
async def test_one_batch_stops_the_carts_of_several_visitors(
    client, session, site, endpoint, clock, timers, stop
):
    # Orders (or unsubscribes) of several leads in one group cancel their timers together.
    visitors = ["a", "b", "c"]
    await send(client, site, *(cart_add(v) for v in visitors))
    await send(client, site, *(track(v, stop, properties={"revenue": 499}) for v in visitors))
    for _ in range(8):
        clock.advance(days=1)
        await timers.run_once()
    types = await message_types(session)
    assert "cart.follow_up" not in types
    if stop == "Order Completed":
        assert "cart.abandoned" not in types
        pending = await session.scalars(select(LeadTimer).where(LeadTimer.kind == "cart_abandoned"))
        assert {t.status for t in pending} == {"cancelled"}


async def test_an_anonymous_visitor_leaving_a_contact_is_identified(
    client, session, site, endpoint
):
    await send(client, site, {"type": "page", "anonymousId": "v"})
    await send(client, site, identify_body("v", {"email": "ann@example.com"}))
    await send(client, site, identify_body("v", {"phone": "+7 900"}))
    msgs = await messages_of(session, "lead.identified")
    assert len(msgs) == 1
    assert msgs[0].payload["data"]["contacts"] == {"email": "ann@example.com"}
    assert msgs[0].payload["data"]["identified"] is True


async def test_endpoints_only_get_the_types_they_asked_for(client, session, site, clock):
    await add_endpoint(client, site, "https://a.example.com/", event_types=["lead.identified"])
    await send(client, site, track("v", "Contact Requested", properties={"phone": "1"}))
    assert await message_types(session) == ["lead.identified"]


async def test_a_merge_that_brings_an_order_cancels_the_survivors_old_cart_timers(
    client, session, site, endpoint, clock, timers
):
    # The simulator's reproduction: b's cart timer was pending when a's order merged in.
    await send(client, site, {"type": "identify", "anonymousId": "b", "userId": "u"})
    await send(client, site, {**cart_add("b"), "userId": "u"})
    await send(client, site, cart_add("a", "oven-2"))
    await send(client, site, track("a", "Order Completed", properties={"revenue": 1}))
    await send(client, site, {"type": "identify", "anonymousId": "a", "userId": "u"})
    survivor = await lead_by_anonymous_id(session, site.site.id, "a")
    assert survivor.merged_into_id is None
    assert survivor.id == (await lead_by_anonymous_id(session, site.site.id, "b")).id
    assert (survivor.cart or {}).get("ordered_at")
    pending = await session.scalars(
        select(LeadTimer).where(LeadTimer.lead_id == survivor.id, LeadTimer.status == "pending")
    )
    episodes = {t.episode for t in pending if t.kind in CART_KINDS}
    assert episodes <= {cart_episode(survivor.cart)}, episodes
