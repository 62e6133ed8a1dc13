"""What a real receiver gets is what docs/webhooks.md and the OpenAPI document say: signed per
Standard Webhooks (verified with the `standardwebhooks` library, as a consumer would), with the
documented headers, and a body valid against the document's schema for its event type."""

import json
from typing import Any

import jsonschema_rs
from standardwebhooks import Webhook

from tests.factories import send, track
from tests.helpers import eventually
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
    # Another type's schema does not take it: the schemas tell the types apart.
    hot = next(json.loads(got.body) for got in received if b'"lead.hot"' in got.body)
    assert not _documented_validator(document, "cart.abandoned").is_valid(hot)
    await eventually(lambda: all_succeeded(session))
