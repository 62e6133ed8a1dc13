"""Webhook endpoints: create (the secret shown once), change, rotate the secret, delete,
test, resend by hand, and the attempt log."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import WebhookSettings
from app.crypto import SecretBox
from app.db import utcnow
from app.errors import Conflict, NotFound, Unprocessable
from app.webhooks import outbox, signing
from app.webhooks.attempt import RefusedAddress, check_url
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookMessage
from app.webhooks.schemas import WebhookEndpointCreate, WebhookEndpointUpdate


def _valid_url(url: str, settings: WebhookSettings) -> str:
    try:
        check_url(url, settings.allow_private_networks)
    except RefusedAddress as exc:
        raise Unprocessable(
            f"This URL cannot receive webhooks: {exc}.", code="url_refused"
        ) from exc
    return url


@dataclass(frozen=True, slots=True)
class WithSecret:
    """An endpoint and its new signing secret in clear, to show once (only its encryption is
    stored)."""

    endpoint: WebhookEndpoint
    secret: str


async def create(
    session: AsyncSession,
    site_id: uuid.UUID,
    body: WebhookEndpointCreate,
    settings: WebhookSettings,
    box: SecretBox,
) -> WithSecret:
    now = utcnow()
    secret = signing.new_secret()
    endpoint = WebhookEndpoint(
        site_id=site_id,
        url=_valid_url(body.url, settings),
        description=body.description,
        event_types=list(dict.fromkeys(body.event_types)),
        enabled=body.enabled,
        secret_encrypted=box.encrypt(secret),
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    return WithSecret(endpoint, secret)


async def get(session: AsyncSession, site_id: uuid.UUID, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    # A person's notification channel is a delivery target too, managed elsewhere.
    if endpoint is None or endpoint.site_id != site_id or endpoint.kind != "webhook":
        raise NotFound("No such webhook endpoint.")
    return endpoint


async def list_for_site(session: AsyncSession, site_id: uuid.UUID) -> Sequence[WebhookEndpoint]:
    result = await session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.site_id == site_id, WebhookEndpoint.kind == "webhook")
        .order_by(WebhookEndpoint.created_at)
    )
    return result.all()


async def change(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    body: WebhookEndpointUpdate,
    settings: WebhookSettings,
) -> WebhookEndpoint:
    now = utcnow()
    fields = body.model_fields_set
    if "url" in fields and body.url is not None:
        endpoint.url = _valid_url(body.url, settings)
    if "event_types" in fields and body.event_types is not None:
        endpoint.event_types = list(dict.fromkeys(body.event_types))
    if "description" in fields:
        endpoint.description = body.description
    if "enabled" in fields and body.enabled is not None:
        endpoint.enabled = body.enabled
        if body.enabled:  # undoes an automatic disable: a fresh run of failures starts
            endpoint.disabled_reason = None
            endpoint.disabled_at = None
            endpoint.consecutive_failures = 0
            endpoint.failing_since = None
        else:
            endpoint.disabled_reason = "disabled by the site"
            endpoint.disabled_at = now
    endpoint.updated_at = now
    await session.flush()
    return endpoint


async def rotate(
    session: AsyncSession, endpoint: WebhookEndpoint, settings: WebhookSettings, box: SecretBox
) -> WithSecret:
    """A new secret; the old one keeps signing (alongside) for the grace period."""
    now = utcnow()
    secret = signing.new_secret()
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_until = now + timedelta(hours=settings.rotation_grace_hours)
    endpoint.secret_encrypted = box.encrypt(secret)
    endpoint.updated_at = now
    await session.flush()
    return WithSecret(endpoint, secret)


async def reencrypt_secrets(session: AsyncSession, box: SecretBox) -> int:
    """Every stored signing secret under the box's first key (after a key rotation, before
    the old key is dropped); the number of endpoints."""
    endpoints = (await session.scalars(select(WebhookEndpoint))).all()
    for endpoint in endpoints:
        endpoint.secret_encrypted = box.reencrypt(endpoint.secret_encrypted)
        if endpoint.previous_secret_encrypted:
            endpoint.previous_secret_encrypted = box.reencrypt(endpoint.previous_secret_encrypted)
    await session.flush()
    return len(endpoints)


async def send_test(session: AsyncSession, endpoint: WebhookEndpoint) -> uuid.UUID:
    if not endpoint.enabled:
        raise Conflict("The endpoint is disabled; enable it first.", code="endpoint_disabled")
    conn = await session.connection()
    now = utcnow()
    data = {"endpoint_id": str(endpoint.id), "message": "A test event from Leadheat."}
    message = outbox.NewMessage(
        endpoint.site_id, outbox.WEBHOOK_TEST, data, endpoint_id=endpoint.id
    )
    ids = await outbox.enqueue(conn, [message], now)
    return ids[0]


def parse_message_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw.removeprefix("msg_"))
    except ValueError as exc:
        raise NotFound("No such message.") from exc


async def resend(session: AsyncSession, site_id: uuid.UUID, message_id: uuid.UUID) -> int:
    """Send a message again to every endpoint it went to: a fresh run of attempts, now."""
    message = await session.get(WebhookMessage, message_id)
    if message is None or message.site_id != site_id:
        raise NotFound("No such message.")
    d = cast(Table, WebhookDelivery.__table__)
    now = utcnow()
    result = await session.execute(
        update(d)
        .where(d.c.message_id == message_id)
        .values(status="pending", attempts=0, next_attempt_at=now, locked_until=None)
        .returning(d.c.id)
    )
    count = len(result.all())
    await outbox.wake_after_commit(await session.connection())
    return count


async def attempts(
    session: AsyncSession, endpoint: WebhookEndpoint, limit: int, before: datetime | None
) -> list[tuple[WebhookAttempt, str, str]]:
    """The endpoint's attempt log, newest first, with each message's type and the delivery's
    current status."""
    query = (
        select(WebhookAttempt, WebhookMessage.event_type, WebhookDelivery.status)
        .join(WebhookMessage, WebhookMessage.id == WebhookAttempt.message_id)
        .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
        .where(WebhookAttempt.endpoint_id == endpoint.id)
        .order_by(WebhookAttempt.attempted_at.desc(), WebhookAttempt.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(WebhookAttempt.attempted_at < before)
    return [(a, t, s) for a, t, s in (await session.execute(query)).all()]
