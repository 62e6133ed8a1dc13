"""When an endpoint is disabled: a burst of concurrent failures (a receiver whose listen queue
overflowed for a second) is an outage, not a dead endpoint; only failures that go on for the
configured span disable it, and its messages are kept and sent once it is enabled again."""

import json
from datetime import datetime, timedelta

import pytest

from app.webhooks.delivery_loop import DeliveryService
from tests.factories import bearer, send, track
from tests.webhooks.conftest import DROP, webhook_settings
from tests.webhooks.helpers import add_endpoint, deliveries, queue_test


@pytest.fixture
def settings(settings):
    """No background loops here: each test sends by hand, at the times it chooses."""
    return settings.model_copy(update={"run_background": False})


@pytest.fixture
async def worker(db_engine, clock, box):
    service = DeliveryService(db_engine, webhook_settings(disable_after_failures=4), box, now=clock)
    yield service
    await service.aclose()


async def get_endpoint(client, site, endpoint):
    r = await client.get(f"/v1/webhooks/{endpoint['id']}", headers=bearer(site.secret_key))
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_burst_of_failed_concurrent_attempts_does_not_disable_the_endpoint(
    client, site, receiver, worker, clock, session
):
    endpoint = await add_endpoint(client, site, receiver.url)
    sent = {await queue_test(client, site, endpoint) for _ in range(20)}
    receiver.default = (DROP, {}, b"")  # the receiver drops every connection of the burst
    assert await worker.run_once() == 20
    got = await get_endpoint(client, site, endpoint)
    assert got["enabled"] is True, got["disabled_reason"]
    assert got["consecutive_failures"] >= 4  # the threshold: a count alone disables nothing

    receiver.default = (200, {}, b"ok")  # recovered
    recovered_at = len(receiver.received)
    for _ in range(4):  # the retries (its small listen queue may still reset a connection)
        clock.advance(hours=1)
        await worker.run_once()
        if {d.status for d in await deliveries(session)} == {"succeeded"}:
            break
    assert {d.status for d in await deliveries(session)} == {"succeeded"}
    assert {r.headers["webhook-id"] for r in receiver.received[recovered_at:]} >= sent
    got = await get_endpoint(client, site, endpoint)
    assert (got["enabled"], got["consecutive_failures"]) == (True, 0)


async def test_failing_for_longer_than_the_span_disables_and_messages_wait_for_re_enabling(
    client, site, receiver, worker, clock, session
):
    endpoint = await add_endpoint(client, site, receiver.url)
    receiver.default = (500, {}, b"broken")
    for _ in range(4):
        await queue_test(client, site, endpoint)
    assert await worker.run_once() == 4
    clock.advance(hours=71)  # failing, but for less than the 72 hours
    assert await worker.run_once() == 4
    got = await get_endpoint(client, site, endpoint)
    assert (got["enabled"], got["consecutive_failures"]) == (True, 8)
    assert datetime.fromisoformat(got["failing_since"]) == clock.now - timedelta(hours=71)

    clock.advance(hours=1)
    assert await worker.run_once() == 4
    got = await get_endpoint(client, site, endpoint)
    assert got["enabled"] is False
    assert got["disabled_reason"] == "9 failed attempts in a row over 72 hours"

    # While it is disabled, new messages are stored for it, and not sent.
    await send(client, site, track("v", "Contact Requested", properties={"phone": "+7 900"}))
    clock.advance(days=1)
    assert await worker.run_once() == 0
    waiting = [d for d in await deliveries(session) if d.attempts == 0]
    assert waiting
    assert {d.status for d in waiting} == {"pending"}

    receiver.default = (200, {}, b"ok")
    r = await client.patch(
        f"/v1/webhooks/{endpoint['id']}", headers=bearer(site.secret_key), json={"enabled": True}
    )
    assert (r.json()["consecutive_failures"], r.json()["failing_since"]) == (0, None)
    assert await worker.run_once() == 4 + len(waiting)
    assert {d.status for d in await deliveries(session)} == {"succeeded"}
    types = [json.loads(r.body)["type"] for r in receiver.received[12:]]
    assert "lead.hot" in types


async def test_a_success_ends_the_run_of_failures(client, site, receiver, worker, clock):
    endpoint = await add_endpoint(client, site, receiver.url)
    receiver.default = (500, {}, b"broken")
    for _ in range(4):
        await queue_test(client, site, endpoint)
    await worker.run_once()
    clock.advance(hours=71)
    receiver.default = (200, {}, b"ok")
    await worker.run_once()  # the receiver is back: a new run of failures starts later
    receiver.default = (500, {}, b"broken again")
    for _ in range(4):
        await queue_test(client, site, endpoint)
    await worker.run_once()
    clock.advance(hours=2)  # 73 hours since the first failure, 2 since the success
    await worker.run_once()
    got = await get_endpoint(client, site, endpoint)
    assert got["enabled"] is True, got["disabled_reason"]
    assert got["consecutive_failures"] == 8
