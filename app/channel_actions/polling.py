"""Long polling (getUpdates), for a server the Bot API cannot reach: one process of the
deployment (the lease `channels.telegram_polling`) asks Telegram for each polling bot's
updates and handles them as the webhook route does. The next offset is stored with the bot
in the update's own transaction, and each handled update id is noted there too
(app.channel_actions.service), so an update is acted on once even across restarts."""

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from app import leases, wakeups
from app.background import BackgroundContext, BackgroundLoop
from app.channel_actions import service
from app.channels.models import TelegramBot
from app.channels.telegram import BotApi
from app.crypto import SecretBox, SecretsKeyError, secret_box
from app.db import utcnow, writer

logger = logging.getLogger(__name__)

LEASE = "channels.telegram_polling"
# With no polling bot: how often to look for one (a bot switched to polling wakes the loop).
IDLE_SECONDS = 30.0


async def poll_once(
    context: BackgroundContext, api: BotApi, box: SecretBox, wait_seconds: float
) -> int:
    """One getUpdates per polling bot, at once (each waits up to `wait_seconds` for an
    update); answers how many bots were polled."""
    async with context.sessionmaker() as session:
        bots = (
            await session.scalars(select(TelegramBot).where(TelegramBot.mode == "polling"))
        ).all()
        session.expunge_all()
    await asyncio.gather(*(_poll_bot(context, api, box, bot, wait_seconds) for bot in bots))
    return len(bots)


async def _poll_bot(
    context: BackgroundContext, api: BotApi, box: SecretBox, bot: TelegramBot, wait: float
) -> int:
    try:
        token = box.decrypt(bot.token_encrypted)
    except SecretsKeyError as exc:
        logger.error("telegram bot of site %s: %s", bot.site_id, exc)
        return 0
    params: dict[str, Any] = {
        "offset": bot.update_offset,
        "timeout": int(wait),
        "allowed_updates": service.ALLOWED_UPDATES,
    }
    answer = await api.call(token, "getUpdates", params, timeout=wait + 10)
    if not answer.ok or not isinstance(answer.result, list):
        logger.warning(
            "telegram getUpdates for site %s: %s",
            bot.site_id,
            answer.description or answer.error or answer.status_code,
        )
        # Not at once again: a bot that fails at once (a revoked token) must not spin.
        await asyncio.sleep(min(answer.retry_after or 1.0, 60))
        return 0
    handled = 0
    for item in answer.result:
        if not isinstance(item, dict) or not isinstance(item.get("update_id"), int):
            continue
        async with context.sessionmaker() as session:
            fresh = await session.get(TelegramBot, bot.site_id)
            if fresh is None or fresh.mode != "polling":
                return handled
            calls = await service.handle_update(session, fresh, item, box, utcnow())
            await session.execute(
                update(TelegramBot)
                .where(TelegramBot.site_id == bot.site_id)
                .values(update_offset=item["update_id"] + 1)
            )
            await session.commit()
        await service.make_calls(api, token, calls)
        handled += 1
    return handled


async def polling_loop(
    context: BackgroundContext,
    stop: asyncio.Event,
    *,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    settings = context.settings.channels
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    length = timedelta(seconds=settings.telegram_poll_lease_seconds)
    box = secret_box(context.settings)
    api = BotApi(context.settings.telegram_api_base, settings.telegram_timeout_seconds)
    woken = wakeups.wakeups_for(context.engine).event(service.POLLING)
    try:
        while not stop.is_set():
            woken.clear()
            polled = 0
            if await leases.take(writer(context.engine), LEASE, holder, clock(), length):
                # A long poll shorter than the lease, so that it is renewed in time; the long
                # poll is the wait between passes.
                wait = min(settings.telegram_poll_seconds, length.total_seconds() / 3)
                polled = await poll_once(context, api, box, wait)
            if not polled:
                await wakeups.wait(stop, woken, IDLE_SECONDS)
    finally:
        await api.aclose()
        with contextlib.suppress(Exception):  # the lease expires anyway
            await leases.give_up(writer(context.engine), LEASE, holder)


LOOPS: list[tuple[str, BackgroundLoop]] = [("channels.telegram_polling", polling_loop)]
