"""Sending an outbox delivery whose target is a notification channel (app.channels): a
person's Telegram chat, email or Slack-compatible webhook, or a site's team channel. The
delivery loop claims, retries and logs these like any webhook delivery; only the attempt
differs: it renders the message for the channel and answers an `AttemptOutcome`."""

import logging
import time
import uuid
from datetime import timedelta
from typing import Any, cast

import aiosmtplib
import orjson
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.channels import mail, render
from app.channels.links import LinkSigner
from app.channels.models import TelegramBot
from app.channels.telegram import BotAnswer, BotApi
from app.config import Settings
from app.crypto import SecretBox, SecretsKeyError
from app.webhooks.attempt import AttemptOutcome, Sender

logger = logging.getLogger(__name__)


def lead_url(settings: Settings, lead_id: str) -> str | None:
    if not settings.public_url or not lead_id:
        return None
    base = settings.public_url.rstrip("/")
    return settings.channels.lead_url.format(public_url=base, lead_id=lead_id)


def action_url(settings: Settings, token: str) -> str:
    assert settings.public_url
    return f"{settings.public_url.rstrip('/')}/v1/actions/{token}"


def outcome_of(answer: BotAnswer) -> AttemptOutcome:
    """A Bot API answer as the attempt log keeps it (429's retry_after honoured). A 403 (the
    person blocked the bot, or left Telegram) will not pass on a retry: the chat is gone."""
    body = answer.body if answer.ok else (answer.description or answer.body)
    gone = None
    if answer.status_code == 403 and not answer.ok:
        gone = f"Telegram refused: {answer.description or 'Forbidden'}"[:200]
    return AttemptOutcome(
        answer.status_code if answer.error is None else None,
        body,
        answer.error,
        answer.duration_ms,
        answer.retry_after,
        accepted=answer.ok if answer.error is None else None,
        gone=gone,
    )


class ChannelSender:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        box: SecretBox,
        sender: Sender,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._box = box
        self._sender = sender
        self._bot_api = BotApi(
            settings.telegram_api_base, settings.channels.telegram_timeout_seconds
        )
        self._links = LinkSigner(box, timedelta(hours=settings.channels.action_link_hours))

    async def aclose(self) -> None:
        await self._bot_api.aclose()

    def links(self, user_id: uuid.UUID | None, lead_id: str) -> render.Links:
        """The lead's link, and one-click actions when the message is a person's."""
        lead = lead_url(self._settings, lead_id)
        if user_id is None or not self._settings.public_url or not lead_id:
            return render.Links(lead=lead)
        lead_uuid = uuid.UUID(lead_id)
        return render.Links(
            lead=lead,
            claim=action_url(self._settings, self._links.sign(user_id, lead_uuid, "claim")),
            contacted=action_url(self._settings, self._links.sign(user_id, lead_uuid, "contacted")),
        )

    async def send(
        self,
        kind: str,
        site_id: uuid.UUID,
        user_id: uuid.UUID | None,
        address: str,
        secret: str | None,
        event_type: str,
        payload: dict[str, Any],
    ) -> AttemptOutcome:
        alert = render.alert(event_type, payload)
        if kind == "telegram":
            return await self._telegram(site_id, user_id, address, alert)
        if kind == "email":
            return await self._email(user_id, address, alert)
        if kind == "slack" and secret:
            body = orjson.dumps(render.slack(alert, self.links(user_id, alert.lead_id)))
            return await self._sender.send(secret, {"content-type": "application/json"}, body)
        return AttemptOutcome(None, None, f"unknown channel kind {kind!r}", 0.0)

    async def _telegram(
        self, site_id: uuid.UUID, user_id: uuid.UUID | None, address: str, alert: render.Alert
    ) -> AttemptOutcome:
        t = cast(Table, TelegramBot.__table__)
        async with self._engine.connect() as conn:
            token_encrypted = await conn.scalar(
                select(t.c.token_encrypted).where(t.c.site_id == site_id)
            )
        if token_encrypted is None:
            return AttemptOutcome(None, None, "the site has no Telegram bot", 0.0)
        try:
            token = self._box.decrypt(token_encrypted)
        except SecretsKeyError as exc:
            return AttemptOutcome(None, None, str(exc)[:500], 0.0)
        params: dict[str, Any] = {
            "chat_id": address.removeprefix("tg:"),
            "text": render.telegram_html(alert),
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
        }
        keyboard = render.telegram_keyboard(
            alert, render.Links(lead=lead_url(self._settings, alert.lead_id)), user_id is not None
        )
        if keyboard:
            params["reply_markup"] = keyboard
        return outcome_of(await self._bot_api.call(token, "sendMessage", params))

    async def _email(
        self, user_id: uuid.UUID | None, address: str, alert: render.Alert
    ) -> AttemptOutcome:
        links = self.links(user_id, alert.lead_id)
        smtp = self._settings.smtp
        message = mail.message(
            smtp,
            address.removeprefix("mailto:"),
            f"{alert.title}: {alert.who}",
            render.text(alert, links),
            render.email_html(alert, links),
        )
        started = time.perf_counter()
        try:
            reply = await mail.send(smtp, message)
        except mail.MailNotConfigured as exc:
            return AttemptOutcome(None, None, str(exc), 0.0)
        except aiosmtplib.SMTPResponseException as exc:
            error = f"smtp {exc.code}: {exc.message}"[:500]
            return AttemptOutcome(None, None, error, _ms(started))
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            return AttemptOutcome(None, None, error, _ms(started))
        return AttemptOutcome(None, reply[:2048], None, _ms(started), accepted=True)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
