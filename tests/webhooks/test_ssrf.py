"""By default nothing is delivered to loopback, private, link-local or metadata addresses,
checked on the address actually connected to (so a DNS name pointing inside is refused)."""

import socket

import pytest
from sqlalchemy import select

from app.config import Settings
from app.webhooks.delivery_loop import DeliveryService
from app.webhooks.models import WebhookAttempt
from tests.factories import bearer
from tests.webhooks.helpers import add_endpoint, queue_test


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"run_background": False})


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[fd00:ec2::254]/hook",
        "http://100.64.0.1/hook",
        "file:///etc/passwd",
        "gopher://example.com/",
    ],
)
async def test_internal_and_non_http_urls_are_refused_by_default(client, site, settings, url):
    settings.webhooks.allow_private_networks = False
    r = await client.post("/v1/webhooks", headers=bearer(site.secret_key), json={"url": url})
    assert r.status_code == 422, url
    assert r.json()["code"] in ("url_refused", "validation_error")


async def test_a_name_resolving_to_loopback_is_refused_at_send_time(
    client, site, receiver, settings, db_engine, session, monkeypatch, box
):
    port = receiver.url.split(":")[2].split("/")[0]
    # Created while private networks were allowed (or the name pointed elsewhere then).
    endpoint = await add_endpoint(client, site, f"http://hooks.example.com:{port}/hooks")
    await queue_test(client, site, endpoint)
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if host == "hooks.example.com":
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    strict = settings.webhooks.model_copy(update={"allow_private_networks": False})
    async with DeliveryService(db_engine, strict, box) as worker:
        assert await worker.run_once() == 1
    assert receiver.received == []
    attempt = await session.scalar(select(WebhookAttempt))
    assert attempt.status_code is None
    assert "127.0.0.1" in attempt.error
    assert attempt.error.startswith("refused")


async def test_private_networks_can_be_allowed_for_development(
    client, site, receiver, db_engine, box
):
    endpoint = await add_endpoint(client, site, receiver.url)
    await queue_test(client, site, endpoint)
    from tests.webhooks.conftest import webhook_settings

    async with DeliveryService(db_engine, webhook_settings(), box) as worker:
        await worker.run_once()
    assert len(receiver.received) == 1
