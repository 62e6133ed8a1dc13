"""Shared steps of the webhook tests."""

from typing import Any

from sqlalchemy import select

from app.webhooks.models import WebhookDelivery, WebhookMessage
from tests.factories import bearer


async def add_endpoint(client: Any, site: Any, url: str, **fields: Any) -> dict[str, Any]:
    r = await client.post(
        "/v1/webhooks", headers=bearer(site.secret_key), json={"url": url, **fields}
    )
    assert r.status_code == 201, r.text
    return r.json()


async def queue_test(client: Any, site: Any, endpoint: dict[str, Any]) -> str:
    r = await client.post(f"/v1/webhooks/{endpoint['id']}/test", headers=bearer(site.secret_key))
    assert r.status_code == 202, r.text
    return str(r.json()["message_id"])


async def deliveries(session: Any) -> list[WebhookDelivery]:
    session.expire_all()
    return list(await session.scalars(select(WebhookDelivery)))


async def all_succeeded(session: Any) -> bool:
    """Whether every delivery is recorded as succeeded."""
    return {d.status for d in await deliveries(session)} == {"succeeded"}


async def message_types(session: Any) -> list[str]:
    session.expire_all()
    rows = await session.scalars(select(WebhookMessage).order_by(WebhookMessage.created_at))
    return [m.event_type for m in rows]


async def messages_of(session: Any, event_type: str | None = None) -> list[WebhookMessage]:
    session.expire_all()
    query = select(WebhookMessage).order_by(WebhookMessage.created_at)
    if event_type:
        query = query.where(WebhookMessage.event_type == event_type)
    return list(await session.scalars(query))
