"""RudderStack's Node SDK on its defaults (gzipped JSON labelled
application/x-www-form-urlencoded) delivers every call to a real Leadheat server."""

import asyncio
import json
from typing import Any

from tests.factories import create_site, lead_by_anonymous_id, stored_events
from tests.npm_clients import run_node


async def test_rudder_sdk_node_on_its_defaults_delivers_every_call(live_server, session):
    site = await create_site(session)
    calls: list[list[Any]] = [
        ["page", {"anonymousId": "rs-anon", "name": "Fridges", "properties": {"path": "/f"}}],
        [
            "track",
            {
                "anonymousId": "rs-anon",
                "event": "Product Viewed",
                "properties": {"product_id": "f1", "category": "fridges", "price": 499},
            },
        ],
        [
            "identify",
            {
                "userId": "rs-user",
                "anonymousId": "rs-anon",
                "traits": {"email": "buyer@example.com", "city": "Kazan"},
            },
        ],
        ["group", {"userId": "rs-user", "groupId": "acme", "traits": {"name": "Acme"}}],
        ["alias", {"previousId": "rs-anon", "userId": "rs-user"}],
        [
            "track",
            {
                "userId": "rs-user",
                "event": "Product Added",
                "properties": {"product_id": "f1", "category": "fridges", "price": 499},
            },
        ],
    ]
    spec = {"dataPlaneUrl": live_server.url, "writeKey": site.write_key, "calls": calls}
    out = await asyncio.to_thread(run_node, "rudderstack-node.cjs", json.dumps(spec))
    assert out.strip() == "sent 6"

    events = await stored_events(session, site.site.id)
    assert sorted(e.type for e in events) == sorted(method for method, _ in calls)
    assert len({e.message_id for e in events}) == len(calls)  # each once
    assert {e.context["library"]["name"] for e in events} == {"analytics-node"}
    viewed = next(e for e in events if e.name == "Product Viewed")
    assert viewed.properties == {"product_id": "f1", "category": "fridges", "price": 499}
    assert viewed.anonymous_id == "rs-anon"
    identify = next(e for e in events if e.type == "identify")
    assert identify.traits == {"email": "buyer@example.com", "city": "Kazan"}
    event_leads = {e.lead_id for e in events if e.type != "group"}
    lead = await lead_by_anonymous_id(session, site.site.id, "rs-anon")
    assert lead.user_id == "rs-user"
    assert lead.contacts == {"email": "buyer@example.com"}
    assert lead.cart["item_count"] == 1
    assert event_leads == {lead.id}
