"""A lead turning hot reaches a real receiver at once, signed, with the lead's details."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from standardwebhooks import Webhook

from app.webhooks.models import WebhookDelivery
from tests.factories import lead_by_anonymous_id, track
from tests.webhooks.helpers import add_endpoint, send


async def test_a_contact_request_sends_lead_hot_signed_with_contact_by(
    client, session, site, receiver
):
    endpoint = await add_endpoint(client, site, receiver.url, event_types=["lead.hot"])
    assert endpoint["secret"].startswith("whsec_")
    now = datetime.now(UTC).replace(microsecond=0)
    await send(
        client,
        site,
        {"type": "page", "anonymousId": "v", "timestamp": now.isoformat(),
         "context": {"page": {"url": "https://shop.example/fridges"}}},
        track("v", "Contact Requested", timestamp=now.isoformat(), properties={"phone": "+7 900"}),
    )  # fmt: skip
    [got] = await receiver.wait_for(1)
    payload = Webhook(endpoint["secret"]).verify(got.body, got.headers)
    assert payload["type"] == "lead.hot"
    data = payload["data"]
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    assert data["lead_id"] == str(lead.id)
    assert data["temperature"] == "hot"
    assert data["contacts"] == {"phone": "+7 900"}
    assert data["last_url"] == "https://shop.example/fridges"
    assert datetime.fromisoformat(data["contact_by"]) == now + timedelta(minutes=5)
    assert lead.contact_by == now + timedelta(minutes=5)
    assert data["top_rules"][0]["kind"] == "hard"
    assert got.headers["webhook-id"].startswith("msg_")
    session.expire_all()
    delivery = await session.scalar(select(WebhookDelivery))
    for _ in range(50):
        session.expire_all()
        delivery = await session.scalar(select(WebhookDelivery))
        if delivery.status == "succeeded":
            break
        import asyncio

        await asyncio.sleep(0.05)
    assert delivery.status == "succeeded"
