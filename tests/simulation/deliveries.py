"""Every outbox message reaches the receiver: polled until the deadline, as delivery is
asynchronous (the server's delivery loop sends what ingestion and the timers queued)."""

import asyncio
import time
import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.webhooks import signing
from app.webhooks.models import WebhookDelivery, WebhookMessage
from tests.simulation.receiver import Receiver


async def undelivered(
    db: AsyncEngine, site_id: uuid.UUID, receiver: Receiver, timeout: float = 60.0
) -> list[str]:
    """What is still missing at the deadline (nothing: every message was delivered)."""
    deadline = time.monotonic() + timeout
    while True:
        async with db.connect() as conn:
            messages = {
                signing.message_id(m)  # the webhook-id header
                for m in await conn.scalars(
                    select(WebhookMessage.id).where(WebhookMessage.site_id == site_id)
                )
            }
            statuses = dict(
                (
                    await conn.execute(
                        select(WebhookDelivery.status, func.count())
                        .join(WebhookMessage, WebhookMessage.id == WebhookDelivery.message_id)
                        .where(WebhookMessage.site_id == site_id)
                        .group_by(WebhookDelivery.status)
                    )
                ).all()
            )
        missing = sorted(messages - set(receiver.ids))
        if not missing and set(statuses) <= {"succeeded"}:
            return []
        if time.monotonic() > deadline:
            return [f"deliveries {statuses}; not received: {missing[:5]} of {len(missing)}"]
        await asyncio.sleep(0.2)
