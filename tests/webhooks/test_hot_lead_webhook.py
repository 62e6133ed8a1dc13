"""A lead turning hot reaches a real receiver at once, signed, with the lead's details."""

import time
from datetime import UTC, datetime, timedelta

import httpx
from standardwebhooks import Webhook

from app.main import create_app
from tests.factories import create_site, lead_by_anonymous_id, send, track
from tests.helpers import eventually
from tests.webhooks.helpers import add_endpoint, all_succeeded, queue_test


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
    # Recorded once the receiver has answered: a moment after it got the message.
    await eventually(lambda: all_succeeded(session))


async def test_lead_hot_is_sent_at_the_commit_not_at_the_next_poll(settings, session, receiver):
    """The delivery loop is woken by the ingestion commit itself: with the outbox poll at a
    minute, the webhook still arrives within moments (the five-minute promise rests on it)."""
    slow_poll = settings.model_copy(
        update={"webhooks": settings.webhooks.model_copy(update={"poll_seconds": 60.0})}
    )
    site = await create_site(session)
    app = create_app(slow_poll)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            endpoint = await add_endpoint(client, site, receiver.url, event_types=["lead.hot"])
            # A test message delivered and recorded: the loop has polled and now waits for
            # its next poll, a minute away.
            await queue_test(client, site, endpoint)
            await receiver.wait_for(1)
            await eventually(lambda: all_succeeded(session))
            started = time.monotonic()
            await send(
                client, site, track("v", "Contact Requested", properties={"phone": "+7 900"})
            )
            got = await receiver.wait_for(2, timeout=5)
            elapsed = time.monotonic() - started
    assert len(got) == 2
    assert elapsed < 5  # at the next poll it would take up to a minute
