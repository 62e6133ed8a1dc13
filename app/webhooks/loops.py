"""The webhooks' background loops, delivery and timers, run by app.worker (in `leadheat serve`
and `leadheat worker`)."""

import asyncio

from app.background import BackgroundContext, BackgroundLoop
from app.crypto import secret_box
from app.webhooks.delivery_loop import DeliveryService
from app.webhooks.outbox import notifier_for
from app.webhooks.timers import TimerService


async def deliver_webhooks(context: BackgroundContext, stop: asyncio.Event) -> None:
    """Send the outbox's due deliveries (woken at once by local commits, else polling)."""
    box = secret_box(context.settings)
    service = DeliveryService(
        context.engine, context.settings.webhooks, box, channels=context.settings
    )
    await service.run(stop, notifier_for(context.engine))


async def fire_timers(context: BackgroundContext, stop: asyncio.Event) -> None:
    """Fire due first-contact and cart timers."""
    service = TimerService(context.engine, context.settings.webhooks, context.rule_sets)
    await service.run(stop, notifier_for(context.engine))


LOOPS: list[tuple[str, BackgroundLoop]] = [
    ("webhook-delivery", deliver_webhooks),
    ("webhook-timers", fire_timers),
]
