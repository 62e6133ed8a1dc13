"""Every outbox message reaches the receiver: polled until the deadline, as delivery is
asynchronous (the server's delivery loop sends what ingestion and the timers queued)."""

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.webhooks import signing
from app.webhooks.models import WebhookDelivery, WebhookMessage
from tests.helpers import eventually
from tests.simulation.receiver import Receiver


async def undelivered(
    db: AsyncEngine, site_id: uuid.UUID, receiver: Receiver, timeout: float = 60.0
) -> list[str]:
    """What is still missing at the deadline (nothing: every message was delivered)."""
    problems: list[str] = []

    async def delivered() -> bool:
        """every message delivered"""
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
        problems[:] = [f"deliveries {statuses}; not received: {missing[:5]} of {len(missing)}"]
        return not missing and set(statuses) <= {"succeeded"}

    try:
        await eventually(delivered, timeout, interval=0.2)  # each look is two queries
    except AssertionError:
        return problems
    return []
