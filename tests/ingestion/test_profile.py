"""The lead profile is current the moment ingestion answers: visits, time, interests, cart."""

from datetime import UTC, timedelta, timezone

import pytest

from app.domain.profile import MAX_PRODUCTS_VIEWED
from tests.factories import T0, at, lead_by_anonymous_id, send, track


def page(minutes: float, url: str = "https://shop.example/") -> dict:
    return {
        "type": "page",
        "anonymousId": "v",
        "timestamp": at(minutes),
        "properties": {"url": url},
    }


async def test_a_new_visit_starts_after_30_minutes_of_silence(client, session, site):
    await send(client, site, page(0), page(10), page(25))
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    assert (lead.visits, lead.page_views, lead.session_seconds) == (1, 3, 25 * 60)
    await send(client, site, page(56), page(60, "https://shop.example/fridges"))
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    assert (lead.visits, lead.page_views) == (2, 5)
    assert lead.session_seconds == 29 * 60
    assert lead.first_seen_at == T0
    assert lead.last_seen_at == T0 + timedelta(minutes=60)
    assert lead.last_url == "https://shop.example/fridges"


async def test_a_late_event_counts_in_its_own_visit_as_a_replay_would(client, session, site):
    await send(client, site, page(0), page(100))
    await send(client, site, page(50))
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    assert (lead.visits, lead.page_views) == (3, 3)
    assert lead.last_seen_at == lead.visit_started_at == T0 + timedelta(minutes=100)


async def test_visible_time_reported_by_the_tracker_is_time_on_site(client, session, site):
    await send(
        client,
        site,
        page(0),
        track("v", "Page Engaged", timestamp=at(2), properties={"engaged_seconds": 42.5}),
        track("v", "Page Engaged", timestamp=at(3), properties={"engaged_seconds": 10_000}),
    )
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    assert lead.engaged_seconds == 42.5 + 30 * 60  # one report is capped at 30 minutes


async def test_interests_and_products_viewed(client, session, site):
    await send(
        client,
        site,
        track(
            "v",
            "Product Viewed",
            timestamp=at(0),
            properties={"product_id": "f1", "category": "fridges", "price": 500},
        ),
        track(
            "v",
            "Product Viewed",
            timestamp=at(1),
            properties={"product_id": "f2", "category": "fridges"},
        ),
        track(
            "v",
            "Product Viewed",
            timestamp=at(2),
            properties={"product_id": "o1", "category": "ovens"},
        ),
        track(
            "v",
            "Product Viewed",
            timestamp=at(3),
            properties={"product_id": "f1", "category": "fridges"},
        ),
    )
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    assert lead.interests == {"fridges": 3, "ovens": 1}
    assert [p["product_id"] for p in lead.products_viewed] == ["f1", "o1", "f2"]


async def test_the_lead_keeps_its_most_recently_viewed_products(client, session, site):
    # The lead row holds the last MAX_PRODUCTS_VIEWED products, newest first; every view still
    # counts in the interests (and every event stays in the timeline).
    views = [
        track(
            "v",
            "Product Viewed",
            timestamp=at(n),
            properties={"product_id": f"p{n}", "category": "fridges"},
        )
        for n in range(MAX_PRODUCTS_VIEWED + 2)
    ]
    await send(client, site, *views)
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    newest_first = [f"p{n}" for n in reversed(range(2, MAX_PRODUCTS_VIEWED + 2))]
    assert [p["product_id"] for p in lead.products_viewed] == newest_first
    assert lead.products_viewed[0]["at"] == at(MAX_PRODUCTS_VIEWED + 1)  # when, in RFC 3339
    assert lead.interests == {"fridges": MAX_PRODUCTS_VIEWED + 2}


async def test_cart_holds_items_added_and_not_yet_ordered(client, session, site):
    await send(
        client,
        site,
        track(
            "v",
            "Product Added",
            timestamp=at(0),
            properties={"product_id": "f1", "price": 500, "quantity": 2, "name": "Fridge"},
        ),
        track("v", "Product Added", timestamp=at(1), properties={"product_id": "k1", "price": 20}),
        track(
            "v", "Product Removed", timestamp=at(2), properties={"product_id": "f1", "quantity": 1}
        ),
        track("v", "Checkout Started", timestamp=at(3)),
    )
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    assert lead.cart["item_count"] == 2
    assert lead.cart["value"] == 520
    assert lead.cart["items"]["f1"]["name"] == "Fridge"
    assert lead.cart["checkout_started_at"] == at(3)

    await send(
        client, site, track("v", "Order Completed", timestamp=at(4), properties={"revenue": 520})
    )
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    assert (lead.orders, lead.revenue) == (1, 520)
    assert lead.cart["item_count"] == 0


async def test_subscriptions_and_contact_requests(client, session, site):
    await send(client, site, track("v", "Subscribed", timestamp=at(0)))
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    assert lead.subscribed is True
    await send(
        client,
        site,
        track("v", "Unsubscribed", timestamp=at(1)),
        track("v", "Contact Requested", timestamp=at(2), properties={"phone": "+1 555 0100"}),
    )
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    assert lead.subscribed is False
    assert lead.contacts == {"phone": "+1 555 0100"}
    assert lead.identified is True


async def test_city_from_context_location(client, session, site):
    await send(
        client, site, page(0) | {"context": {"location": {"city": "Moscow", "country": "RU"}}}
    )
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    assert (lead.city, lead.country) == ("Moscow", "RU")


async def test_duplicates_do_not_count_twice(client, session, site):
    event = page(0) | {"messageId": "once"}
    await send(client, site, event)
    await send(client, site, event)
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    assert (lead.page_views, lead.events_count) == (1, 1)


@pytest.mark.parametrize(
    "when",
    [
        T0,
        T0.replace(microsecond=123456),
        T0.replace(microsecond=5),
        T0.astimezone(timezone(timedelta(hours=-5))),
    ],
)
async def test_profile_times_are_written_as_isoformat_writes_them(client, session, site, when):
    await send(client, site, track("v", "Checkout Started", timestamp=when.isoformat()))
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    assert lead.cart["checkout_started_at"] == when.astimezone(UTC).isoformat()
