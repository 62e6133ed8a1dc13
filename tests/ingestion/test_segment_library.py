"""Segment's own Python library, pointed at a running Leadheat server, just works."""

import asyncio

import pytest
from segment.analytics import Client

from tests.factories import create_site, lead_by_anonymous_id, stored_events


@pytest.mark.parametrize("gzip", [False, True])
async def test_segment_analytics_python_sends_to_leadheat(live_server, session, gzip):
    site = await create_site(session)
    errors: list[Exception] = []
    client = Client(
        site.write_key,
        host=live_server.url,
        gzip=gzip,
        sync_mode=True,
        max_retries=1,
        on_error=lambda exc, _batch: errors.append(exc),
    )

    def send() -> None:
        client.page(
            anonymous_id="seg-anon",
            name="Fridges",
            properties={"url": "https://shop.example/fridges"},
        )
        client.track(
            anonymous_id="seg-anon",
            event="Product Viewed",
            properties={"product_id": "f1", "category": "fridges", "price": 499},
        )
        client.identify(
            user_id="seg-user", anonymous_id="seg-anon", traits={"email": "buyer@example.com"}
        )
        client.alias(previous_id="seg-anon", user_id="seg-user")
        client.track(
            user_id="seg-user", event="Product Added", properties={"product_id": "f1", "price": 499}
        )
        client.flush()

    await asyncio.to_thread(send)
    assert errors == []
    events = await stored_events(session, site.site.id)
    assert [e.type for e in events] == ["page", "track", "identify", "alias", "track"]
    assert events[0].context["library"]["name"] == "analytics-python"
    event_leads = {e.lead_id for e in events}
    lead = await lead_by_anonymous_id(session, site.site.id, "seg-anon")
    assert lead.user_id == "seg-user"
    assert lead.contacts == {"email": "buyer@example.com"}
    assert lead.interests == {"fridges": 1}
    assert lead.cart["item_count"] == 1
    assert event_leads == {lead.id}
