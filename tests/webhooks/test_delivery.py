"""Delivery to a real receiver, driven by hand with a controllable clock: signatures (and
rotation), the retry schedule, Retry-After, 410, redirects, the attempt log and resending
(automatic disabling after a span of failures: test_disabling.py)."""

import asyncio
from datetime import timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.webhooks.delivery_loop import DeliveryService
from app.webhooks.outbox import notifier_for
from tests.factories import bearer
from tests.webhooks.conftest import webhook_settings
from tests.webhooks.helpers import add_endpoint, deliveries, queue_test


@pytest.fixture
def settings(settings):
    """No background loops here: each test sends by hand, at the times it chooses."""
    return settings.model_copy(update={"run_background": False})


@pytest.fixture
async def worker(db_engine, clock, box):
    settings = webhook_settings(disable_after_failures=4)
    service = DeliveryService(db_engine, settings, box, now=clock)
    yield service
    await service.aclose()


async def test_each_attempt_is_signed_with_the_same_webhook_id(
    client, site, receiver, worker, clock
):
    endpoint = await add_endpoint(client, site, receiver.url)
    message_id = await queue_test(client, site, endpoint)
    receiver.responses = [(500, {}, b"oops")]
    assert await worker.run_once() == 1
    clock.advance(seconds=6)
    assert await worker.run_once() == 1
    first, second = receiver.received
    for got in (first, second):
        payload = Webhook(endpoint["secret"]).verify(got.body, got.headers)
        assert payload["type"] == "webhook.test"
        assert got.headers["webhook-id"] == message_id


async def test_during_rotation_both_secrets_verify_then_only_the_new(
    client, site, receiver, worker, clock, db_engine
):
    endpoint = await add_endpoint(client, site, receiver.url)
    r = await client.post(f"/v1/webhooks/{endpoint['id']}/rotate", headers=bearer(site.secret_key))
    assert r.status_code == 200
    new_secret = r.json()["secret"]
    assert new_secret != endpoint["secret"]
    await queue_test(client, site, endpoint)
    await worker.run_once()
    got = receiver.received[-1]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(endpoint["secret"]).verify(got.body, got.headers)
    Webhook(new_secret).verify(got.body, got.headers)

    clock.advance(hours=25)  # the grace period is over
    await queue_test(client, site, endpoint)
    await worker.run_once()
    got = receiver.received[-1]
    Webhook(new_secret).verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(got.body, got.headers)


async def test_retries_follow_the_backoff_schedule_then_give_up(
    client, site, receiver, clock, session, db_engine, box
):
    worker = DeliveryService(db_engine, webhook_settings(), box, now=clock)
    endpoint = await add_endpoint(client, site, receiver.url)
    await queue_test(client, site, endpoint)
    receiver.default = (503, {}, b"down")
    schedule = [5, 300, 1800, 7200, 18000, 36000]
    assert await worker.run_once() == 1  # at once
    for wait in schedule:
        [d] = await deliveries(session)
        assert d.status == "pending"
        assert d.next_attempt_at == clock.now + timedelta(seconds=wait)
        clock.advance(seconds=wait - 1)
        assert await worker.run_once() == 0  # not yet due
        clock.advance(seconds=1)
        assert await worker.run_once() == 1
    [d] = await deliveries(session)
    assert d.status == "failed"
    assert d.attempts == 7
    assert len(receiver.received) == 7
    await worker.aclose()


async def test_429_honours_retry_after(client, site, receiver, worker, clock, session):
    endpoint = await add_endpoint(client, site, receiver.url)
    await queue_test(client, site, endpoint)
    receiver.responses = [(429, {"Retry-After": "120"}, b"slow down")]
    await worker.run_once()
    [d] = await deliveries(session)
    assert d.next_attempt_at == clock.now + timedelta(seconds=120)
    clock.advance(seconds=120)
    await worker.run_once()
    [d] = await deliveries(session)
    assert d.status == "succeeded"


async def test_410_disables_the_endpoint_and_enabling_resumes(
    client, site, receiver, worker, clock, session
):
    endpoint = await add_endpoint(client, site, receiver.url)
    await queue_test(client, site, endpoint)
    receiver.responses = [(410, {}, b"gone")]
    await worker.run_once()
    got = (
        await client.get(f"/v1/webhooks/{endpoint['id']}", headers=bearer(site.secret_key))
    ).json()
    assert got["enabled"] is False
    assert "410" in got["disabled_reason"]
    assert got["disabled_at"] is not None
    clock.advance(days=1)
    assert await worker.run_once() == 0  # a disabled endpoint gets nothing

    r = await client.patch(
        f"/v1/webhooks/{endpoint['id']}", headers=bearer(site.secret_key), json={"enabled": True}
    )
    assert r.json()["enabled"] is True
    assert r.json()["disabled_reason"] is None
    assert await worker.run_once() == 1
    [d] = await deliveries(session)
    assert d.status == "succeeded"


async def test_a_redirect_is_a_failure_and_is_not_followed(client, site, receiver, worker, session):
    endpoint = await add_endpoint(client, site, receiver.url)
    await queue_test(client, site, endpoint)
    receiver.responses = [(302, {"Location": receiver.url + "/elsewhere"}, b"")]
    await worker.run_once()
    assert [r.path for r in receiver.received] == ["/hooks"]
    [d] = await deliveries(session)
    assert d.status == "pending"
    assert d.attempts == 1


async def test_the_attempt_log_and_a_resend_by_hand(client, site, receiver, worker, clock):
    endpoint = await add_endpoint(client, site, receiver.url)
    message_id = await queue_test(client, site, endpoint)
    receiver.responses = [(500, {}, b"x" * 10_000)]
    await worker.run_once()
    clock.advance(seconds=5)
    await worker.run_once()
    r = await client.get(
        f"/v1/webhooks/{endpoint['id']}/deliveries", headers=bearer(site.secret_key)
    )
    newest, oldest = r.json()
    assert oldest["status_code"] == 500
    assert not oldest["succeeded"]
    assert len(oldest["response_body"]) == 2048  # bounded
    assert newest["status_code"] == 200
    assert newest["message_id"] == message_id
    assert newest["event_type"] == "webhook.test"
    assert newest["delivery_status"] == "succeeded"
    assert newest["duration_ms"] > 0

    r = await client.post(
        f"/v1/webhooks/messages/{message_id}/resend", headers=bearer(site.secret_key)
    )
    assert r.status_code == 202
    assert r.json()["deliveries"] == 1
    assert await worker.run_once() == 1
    assert [x.headers["webhook-id"] for x in receiver.received] == [message_id] * 3
    r = await client.get(
        f"/v1/webhooks/{endpoint['id']}/deliveries", headers=bearer(site.secret_key)
    )
    assert len(r.json()) == 3


async def test_endpoint_crud(client, site):
    endpoint = await add_endpoint(
        client, site, "https://hooks.example.com/in", event_types=["lead.hot"], description="CRM"
    )
    listed = (await client.get("/v1/webhooks", headers=bearer(site.secret_key))).json()
    assert [e["id"] for e in listed] == [endpoint["id"]]
    assert "secret" not in listed[0]
    r = await client.patch(
        f"/v1/webhooks/{endpoint['id']}",
        headers=bearer(site.secret_key),
        json={"event_types": ["cart.abandoned", "cart.follow_up"], "enabled": False},
    )
    assert r.json()["event_types"] == ["cart.abandoned", "cart.follow_up"]
    assert r.json()["disabled_reason"] == "disabled by the site"
    r = await client.post(
        "/v1/webhooks", headers=bearer(site.secret_key), json={"url": "ftp://x.example"}
    )
    assert r.status_code == 422
    r = await client.post(
        "/v1/webhooks",
        headers=bearer(site.secret_key),
        json={"url": "https://x.example", "event_types": ["x"]},
    )
    assert r.status_code == 422
    assert (await client.get("/v1/webhooks", headers={})).status_code == 401
    r = await client.delete(f"/v1/webhooks/{endpoint['id']}", headers=bearer(site.secret_key))
    assert r.status_code == 204
    r = await client.get(f"/v1/webhooks/{endpoint['id']}", headers=bearer(site.secret_key))
    assert r.status_code == 404


async def test_the_loop_sends_a_retry_when_due_not_at_its_next_poll(
    client, site, receiver, db_engine, box
):
    endpoint = await add_endpoint(client, site, receiver.url)
    await queue_test(client, site, endpoint)  # committed before the loop starts: found by it
    receiver.responses = [(500, {}, b"oops")]
    settings = webhook_settings(poll_seconds=60, retry_schedule_seconds=[1])
    service = DeliveryService(db_engine, settings, box)
    stop = asyncio.Event()
    loop = asyncio.create_task(service.run(stop, notifier_for(db_engine)))
    try:
        first, second = await receiver.wait_for(2, timeout=10)  # far below the poll
    finally:
        stop.set()
        await loop
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
