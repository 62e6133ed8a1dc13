"""What people do through their channels: set up a site's Telegram bot, link a Telegram chat
with a deep-link code, add email and Slack-compatible channels, and act on a lead from a
message (claim it, record a contact) through a Telegram button or a one-click link.

A channel is a delivery target of the outbox (a `webhook_endpoints` row with its `kind` and
`user_id`): created here, sent to by app.webhooks.delivery_loop."""

import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app import wakeups
from app.channels.models import ChannelLinkCode, TelegramBot, TelegramUpdateSeen
from app.channels.telegram import BotApi
from app.config import Settings
from app.crypto import SecretBox, SecretsKeyError
from app.domain import lead_writes
from app.domain.tables import Lead
from app.leads import contacts
from app.leads import service as leads_service
from app.leads.schemas import ContactIn
from app.team.models import User
from app.webhooks.models import WebhookEndpoint

POLLING = "channels.telegram_polling"  # the polling loop's wake-up (app.wakeups)

logger = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "callback_query"]
# How long a handled update's id is kept: Telegram gives up on an update after 24 hours.
SEEN_DAYS = 2


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def webhook_url(settings: Settings, site_id: uuid.UUID) -> str | None:
    if not settings.public_url:
        return None
    return f"{settings.public_url.rstrip('/')}/v1/telegram/{site_id}/webhook"


class BotRefused(Exception):
    """The Bot API refused the token or the webhook (its description), or was unreachable."""


@dataclass(frozen=True, slots=True)
class CheckedBot:
    username: str
    webhook_secret_hash: str | None


async def check_bot(
    site_id: uuid.UUID, token: str, mode: str, settings: Settings, api: BotApi
) -> CheckedBot:
    """Check the token (getMe) and point the bot's webhook at us (webhook mode) or clear it
    (polling: getUpdates is refused while a webhook is set). Calls Telegram: run it with no
    transaction open (on SQLite a writer's would hold the write lock meanwhile)."""
    me = await api.call(token, "getMe", {})
    if not me.ok or not isinstance(me.result, dict) or not me.result.get("username"):
        raise BotRefused(me.description or me.error or f"getMe answered {me.status_code}")
    if mode != "webhook":
        answer = await api.call(token, "deleteWebhook", {})
        if not answer.ok:
            raise BotRefused(answer.description or answer.error or "deleteWebhook failed")
        return CheckedBot(str(me.result["username"]), None)
    url = webhook_url(settings, site_id)
    if url is None:
        raise BotRefused(
            "webhook mode needs LEADHEAT_PUBLIC_URL (the address Telegram posts to);"
            " use mode polling for a server Telegram cannot reach"
        )
    secret = secrets.token_urlsafe(32)
    params = {"url": url, "secret_token": secret, "allowed_updates": ALLOWED_UPDATES}
    answer = await api.call(token, "setWebhook", params)
    if not answer.ok:
        raise BotRefused(answer.description or answer.error or "setWebhook failed")
    return CheckedBot(str(me.result["username"]), digest(secret))


async def store_bot(
    session: AsyncSession,
    site_id: uuid.UUID,
    token: str,
    mode: str,
    checked: CheckedBot,
    box: SecretBox,
    now: datetime,
) -> TelegramBot:
    bot = await session.get(TelegramBot, site_id)
    if bot is None:
        bot = TelegramBot(site_id=site_id, created_at=now, update_offset=0)
        session.add(bot)
    elif _bot_id(box, bot.token_encrypted) != token.partition(":")[0]:
        # Another bot: its update ids are its own sequence, not the last bot's.
        await session.execute(
            delete(TelegramUpdateSeen).where(TelegramUpdateSeen.site_id == site_id)
        )
        bot.update_offset = 0
    bot.token_encrypted = box.encrypt(token)
    bot.username = checked.username
    bot.mode = mode
    bot.webhook_secret_hash = checked.webhook_secret_hash
    bot.updated_at = now
    await session.flush()
    if mode == "polling":  # the process holding the polling lease starts at once
        await wakeups.notify(await session.connection(), POLLING, others=True)
    return bot


def _bot_id(box: SecretBox, token_encrypted: str) -> str | None:
    """The bot's id: the part of its token before the colon (a new token of the same bot,
    after a revoke, keeps it)."""
    try:
        return box.decrypt(token_encrypted).partition(":")[0]
    except SecretsKeyError:  # not readable with today's keys: taken for another bot
        return None


def secret_matches(bot: TelegramBot, sent: str) -> bool:
    """The webhook's secret token header against the stored digest, in constant time."""
    if bot.webhook_secret_hash is None:
        return False
    return hmac.compare_digest(digest(sent).encode(), bot.webhook_secret_hash.encode())


@dataclass(frozen=True, slots=True)
class LinkCode:
    code: str
    url: str
    expires_at: datetime


async def new_link_code(
    session: AsyncSession, bot: TelegramBot, user: User, lifetime: timedelta, now: datetime
) -> LinkCode:
    """A single-use code for `https://t.me/<bot>?start=<code>` (deep links take 64 characters
    of A-Z, a-z, 0-9, _ and -)."""
    code = secrets.token_urlsafe(24)
    expires_at = now + lifetime
    await session.execute(  # the person's used and expired codes: nothing to keep them for
        delete(ChannelLinkCode).where(
            ChannelLinkCode.user_id == user.id,
            (ChannelLinkCode.used_at.is_not(None)) | (ChannelLinkCode.expires_at <= now),
        )
    )
    session.add(
        ChannelLinkCode(
            code_hash=digest(code), site_id=bot.site_id, user_id=user.id, expires_at=expires_at
        )
    )
    await session.flush()
    return LinkCode(code, f"https://t.me/{bot.username}?start={code}", expires_at)


async def add_channel(
    session: AsyncSession,
    site_id: uuid.UUID,
    user_id: uuid.UUID | None,
    kind: str,
    address: str,
    secret: str,
    box: SecretBox,
    now: datetime,
) -> WebhookEndpoint:
    """A person's channel of `kind` (replacing the one they had), or a site's team channel."""
    if user_id is not None:
        await session.execute(
            delete(WebhookEndpoint).where(
                WebhookEndpoint.user_id == user_id, WebhookEndpoint.kind == kind
            )
        )
    if kind == "telegram":  # a chat is one person's: the last one to link it
        await session.execute(
            delete(WebhookEndpoint).where(
                WebhookEndpoint.site_id == site_id,
                WebhookEndpoint.kind == kind,
                WebhookEndpoint.url == address,
            )
        )
    channel = WebhookEndpoint(
        site_id=site_id,
        user_id=user_id,
        kind=kind,
        url=address,
        event_types=[],
        enabled=True,
        secret_encrypted=box.encrypt(secret),
        created_at=now,
        updated_at=now,
    )
    session.add(channel)
    await session.flush()
    return channel


async def channels_of(
    session: AsyncSession, site_id: uuid.UUID, user_id: uuid.UUID | None
) -> list[WebhookEndpoint]:
    owner = (
        WebhookEndpoint.user_id.is_(None)
        if user_id is None
        else (WebhookEndpoint.user_id == user_id)
    )
    rows = await session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.site_id == site_id, WebhookEndpoint.kind != "webhook", owner)
        .order_by(WebhookEndpoint.created_at)
    )
    return list(rows.all())


# -- acting on a lead ------------------------------------------------------------------------


class ActionRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def act(
    session: AsyncSession, user: User, lead_id: uuid.UUID, action: str, via: str, now: datetime
) -> tuple[Lead, str]:
    """Claim a lead or record a contact, as `user` (already checked active); answers the lead
    and what was done, in words for the person."""
    lead = await leads_service.resolve_lead(session, user.site_id, lead_id, for_update=True)
    if lead is None:
        raise ActionRefused("not_found", "This lead no longer exists.")
    if action == "claim":
        if lead.owner_id not in (None, user.id):
            raise ActionRefused("lead_owned", "Someone else owns this lead: ask them or an admin.")
        if lead.owner_id != user.id:
            patch: lead_writes.LeadPatch = {"owner_id": user.id, "owner_assigned_at": now}
            await lead_writes.patch_lead(session, lead, patch, now)
        return lead, "The lead is yours."
    by = user.name or user.email
    await contacts.record_contact(
        session, lead, ContactIn(channel="other", by=by, note=f"marked contacted {via}")
    )
    return lead, "Contact recorded: the clock has stopped."


# -- Telegram updates -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BotCall:
    """A Bot API call to make once the update's transaction has committed."""

    method: str
    params: dict[str, Any]


async def linked_person(session: AsyncSession, site_id: uuid.UUID, chat_id: Any) -> User | None:
    """The active person whose Telegram channel is this chat, if any."""
    return await session.scalar(
        select(User)
        .join(WebhookEndpoint, WebhookEndpoint.user_id == User.id)
        .where(
            WebhookEndpoint.site_id == site_id,
            WebhookEndpoint.kind == "telegram",
            WebhookEndpoint.url == f"tg:{chat_id}",
            User.active,
        )
    )


async def handle_update(
    session: AsyncSession,
    bot: TelegramBot,
    update: dict[str, Any],
    box: SecretBox,
    now: datetime,
) -> list[BotCall]:
    """One update from Telegram (webhook or getUpdates): `/start <code>` links the chat, a
    button press acts for the chat's linked person. Answers the calls to make afterwards,
    none for an update already handled (Telegram sends again what it saw unanswered)."""
    if not await _first_sight(session, bot.site_id, update["update_id"], now):
        return []
    callback = update.get("callback_query")
    if isinstance(callback, dict):
        return await _callback(session, bot, callback, now)
    message = update.get("message")
    if isinstance(message, dict):
        return await _message(session, bot, message, box, now)
    return []


async def _first_sight(
    session: AsyncSession, site_id: uuid.UUID, update_id: int, now: datetime
) -> bool:
    """Note the update as handled, in the caller's transaction: False if it already was. Two
    deliveries at once serialize on the key (PostgreSQL waits for the first to commit, SQLite
    has one writer), so one of them only acts."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    result = await session.execute(
        insert(TelegramUpdateSeen)
        .values(site_id=site_id, update_id=update_id, seen_at=now)
        .on_conflict_do_nothing()
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    await session.execute(
        delete(TelegramUpdateSeen).where(
            TelegramUpdateSeen.site_id == site_id,
            TelegramUpdateSeen.seen_at < now - timedelta(days=SEEN_DAYS),
        )
    )
    return True


async def _message(
    session: AsyncSession,
    bot: TelegramBot,
    message: dict[str, Any],
    box: SecretBox,
    now: datetime,
) -> list[BotCall]:
    chat_id = (message.get("chat") or {}).get("id")
    text = message.get("text")
    if chat_id is None or not isinstance(text, str) or not text.startswith("/start"):
        return []
    code = text.removeprefix("/start").strip()
    if code and (message.get("chat") or {}).get("type") != "private":
        # A group's buttons could be pressed by anyone in it: alerts go to a person's own chat.
        reply = "Open the link in your own chat with the bot, not in a group."
        return [BotCall("sendMessage", {"chat_id": chat_id, "text": reply})]
    row = None
    if code:
        row = await session.scalar(
            select(ChannelLinkCode)
            .where(
                ChannelLinkCode.code_hash == digest(code),
                ChannelLinkCode.site_id == bot.site_id,
                ChannelLinkCode.used_at.is_(None),
                ChannelLinkCode.expires_at > now,
            )
            .with_for_update()
        )
    user = await session.get(User, row.user_id) if row is not None else None
    if row is None or user is None or not user.active:
        reply = (
            "This link is not valid or has expired. Get a new one from the Leadheat dashboard"
            " (your profile, Telegram)."
        )
        return [BotCall("sendMessage", {"chat_id": chat_id, "text": reply})]
    result = await session.execute(
        update(ChannelLinkCode)
        .where(ChannelLinkCode.code_hash == row.code_hash, ChannelLinkCode.used_at.is_(None))
        .values(used_at=now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return []
    await add_channel(session, bot.site_id, user.id, "telegram", f"tg:{chat_id}", "", box, now)
    reply = f"Linked: hot leads for {user.name or user.email} will come here."
    return [BotCall("sendMessage", {"chat_id": chat_id, "text": reply})]


async def _callback(
    session: AsyncSession, bot: TelegramBot, callback: dict[str, Any], now: datetime
) -> list[BotCall]:
    callback_id = callback.get("id")
    message = callback.get("message") or {}
    chat_id = (message.get("chat") or {}).get("id")
    from_id = (callback.get("from") or {}).get("id")
    action, _, raw_lead = str(callback.get("data") or "").partition(":")

    def answer(text: str, alert: bool = False) -> BotCall:
        params: dict[str, Any] = {"callback_query_id": callback_id, "text": text}
        if alert:
            params["show_alert"] = True
        return BotCall("answerCallbackQuery", params)

    # Only the chat's linked person, pressing in their own chat, acts.
    user = None
    if chat_id is not None and from_id == chat_id:
        user = await linked_person(session, bot.site_id, chat_id)
    if user is None:
        return [answer("This chat is not linked to anyone of the shop's team.", alert=True)]
    try:
        lead_id = uuid.UUID(raw_lead)
    except ValueError:
        return [answer("Unknown button.", alert=True)]
    if action not in ("claim", "contacted"):
        return [answer("Unknown button.", alert=True)]
    try:
        _lead, done = await act(session, user, lead_id, action, "in Telegram", now)
    except ActionRefused as exc:
        return [answer(exc.message, alert=True)]
    calls = [answer(done)]
    if action == "contacted" and message.get("message_id") is not None:
        calls.append(
            BotCall(
                "editMessageReplyMarkup",
                {
                    "chat_id": chat_id,
                    "message_id": message["message_id"],
                    "reply_markup": {"inline_keyboard": []},
                },
            )
        )
    return calls


async def make_calls(api: BotApi, token: str, calls: list[BotCall]) -> None:
    """Best effort: a lost answer leaves a spinner on a button, never an action undone."""
    for call in calls:
        answer = await api.call(token, call.method, call.params)
        if not answer.ok:
            logger.warning(
                "telegram %s: %s", call.method, answer.description or answer.error or "failed"
            )
