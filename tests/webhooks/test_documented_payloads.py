"""What a real receiver gets is what docs/webhooks.md and the OpenAPI document say: signed per
Standard Webhooks (verified with the `standardwebhooks` library, as a consumer would), with the
documented headers, and a body valid against the document's schema for its event type."""

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema_rs
import pytest
from standardwebhooks import Webhook

from app.team.assignment import Owner
from app.webhooks.payloads import lead_data
from app.webhooks.schemas import LeadHotEvent
from tests.factories import send, track
from tests.helpers import eventually
from tests.npm_clients import run_node
from tests.webhooks.helpers import add_endpoint, all_succeeded, queue_test


def _documented_validator(document: dict[str, Any], event_type: str) -> Any:
    """A JSON Schema validator for the event type's body, as the document declares it."""
    post = document["webhooks"][event_type]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema_rs.validator_for({**schema, "components": document["components"]})


async def test_a_real_delivery_verifies_and_matches_the_documented_schema(
    client, session, site, receiver
) -> None:
    document = (await client.get("/openapi.json")).json()
    endpoint = await add_endpoint(client, site, receiver.url)
    await queue_test(client, site, endpoint)
    await send(
        client,
        site,
        {"type": "page", "anonymousId": "v",
         "context": {"page": {"url": "https://shop.example/fridges"}}},
        track("v", "Contact Requested", properties={"phone": "+7 900"}),
    )  # fmt: skip
    # webhook.test, then lead.hot, lead.temperature_changed and lead.identified.
    received = await receiver.wait_for(4)
    seen = set()
    for got in received:
        headers = {name.lower(): value for name, value in got.headers.items()}
        for documented in document["webhooks"]["lead.hot"]["post"]["parameters"]:
            assert documented["name"] in headers
        payload = Webhook(endpoint["secret"]).verify(got.body, headers)
        assert payload == json.loads(got.body)
        validator = _documented_validator(document, payload["type"])
        errors = [error.message for error in validator.iter_errors(payload)]
        assert not errors, (payload["type"], errors)
        seen.add(payload["type"])
    assert seen == {"webhook.test", "lead.hot", "lead.temperature_changed", "lead.identified"}
    # The JavaScript library of docs/webhooks.md verifies the same messages, and refuses one
    # whose body was changed on the way.
    messages = [{"headers": dict(got.headers), "body": got.body.decode()} for got in received]
    tampered = {**messages[0], "body": messages[0]["body"].replace('"type"', '"type" ', 1)}
    verified = json.loads(
        await asyncio.to_thread(
            run_node,
            "verify-webhooks.mjs",
            stdin=json.dumps({"secret": endpoint["secret"], "messages": [*messages, tampered]}),
        )
    )
    assert verified[:-1] == [json.loads(got.body)["type"] for got in received]
    assert verified[-1].startswith("refused")
    # Another type's schema does not take it: the schemas tell the types apart.
    hot = next(json.loads(got.body) for got in received if b'"lead.hot"' in got.body)
    assert not _documented_validator(document, "cart.abandoned").is_valid(hot)
    await eventually(lambda: all_succeeded(session))


def _big_profile() -> Any:
    now = datetime.now(UTC)
    return {
        "id": uuid.uuid4(),
        "site_id": uuid.uuid4(),
        "score": 72.5,
        "temperature": "hot",
        "status": "new",
        "identified": True,
        "became_hot_at": now,
        "contact_by": now + timedelta(minutes=5),
        "first_contacted_at": None,
        "contacts": {f"channel{i}": "x" * 40 for i in range(30)},
        "interests": {f"category {i}": i for i in range(200)},
        "cart": {
            "items": {
                f"p{i}": {"product_id": f"p{i}", "quantity": 1, "name": "n" * 80, "price": 9.5}
                for i in range(200)
            },
            "item_count": 200,
            "value": 1900.0,
            "updated_at": now.isoformat(),
        },
        "last_url": "https://shop.example/fridges",
        "city": "Moscow",
        "country": None,
        "user_id": None,
    }


@pytest.mark.parametrize(("max_bytes", "items_kept"), [(12_000, True), (2_000, False)])
def test_a_payload_cut_to_size_is_still_as_documented(max_bytes: int, items_kept: bool) -> None:
    """The payload builder's other branch: over `max_payload_bytes`, cut (then cut more)."""
    owner = Owner(uuid.uuid4(), "Anna", "anna@shop.example")
    data = lead_data(_big_profile(), [], max_bytes, owner, previous_temperature="warm")
    assert data["truncated"] is True
    assert data["owner"] == {"id": str(owner.id), "name": "Anna", "email": "anna@shop.example"}
    assert ("items" in data["cart"]) is items_kept
    event = {"type": "lead.hot", "timestamp": datetime.now(UTC).isoformat(), "data": data}
    LeadHotEvent.model_validate(event)
