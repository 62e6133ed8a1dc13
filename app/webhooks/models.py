"""Webhook endpoints, the outbox (messages and their deliveries), the attempt log, the
speed-to-lead timers and recorded first contacts."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigIntPK, JSONType, UTCDateTime, new_id, utcnow

CHANNEL_KINDS = ("telegram", "email", "slack")


class WebhookEndpoint(Base):
    """A delivery target of the outbox. `kind` "webhook": a URL of the shop's that receives
    signed events (`event_types` empty: every type). Any other kind is a notification channel
    (app.channels): a person's (`user_id`) Telegram chat (`url` "tg:<chat id>"), email
    (`url` "mailto:<address>") or Slack-compatible incoming webhook, or a site's team channel
    (`user_id` null, Slack-compatible only). A channel's secret (the incoming webhook's URL,
    which is its credential) is `secret_encrypted`; its `url` then only names it."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    site_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(2048))
    kind: Mapped[str] = mapped_column(String(16), default="webhook", server_default="webhook")
    # No foreign key (as `leads.owner_id`): people are deactivated, never deleted (a site's
    # deletion takes both), and adding one on SQLite copies the table, whose DROP would
    # cascade to every delivery.
    user_id: Mapped[uuid.UUID | None] = mapped_column(default=None, index=True)
    description: Mapped[str | None] = mapped_column(String(500), default=None)
    event_types: Mapped[list[str]] = mapped_column(JSONType, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200), default=None)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    # The first failure of the current unbroken run of failures (None: the last attempt
    # succeeded, or none failed since the endpoint was enabled).
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The signing secret (HMAC, so needed in clear to sign) is shown to the shop once, on
    # creation or rotation, and stored only encrypted (app.crypto: Fernet tokens).
    secret_encrypted: Mapped[str] = mapped_column(Text)
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    previous_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookMessage(Base):
    """One event for consumers (`lead.hot`, ...); its id is the `webhook-id` of every
    delivery of it, to every endpoint, on every attempt."""

    __tablename__ = "webhook_messages"
    __table_args__ = (Index("ix_webhook_messages_site_id_created_at", "site_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(64))
    lead_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The HTTP request(s) that caused it (app.logs' ids, comma separated): its delivery
    # attempts log them, so that a request can be followed to the webhooks it caused.
    request_id: Mapped[str | None] = mapped_column(String(300), default=None)


class WebhookDelivery(Base):
    """The outbox row: one message to one endpoint, claimed by one worker at a time."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("message_id", "endpoint_id"),
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_messages.id", ondelete="CASCADE")
    )
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    # pending -> succeeded | failed (retries exhausted). Deliveries to a disabled endpoint
    # stay pending (not claimed) and are sent once it is enabled again.
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The lease of the worker sending it; expires if that worker dies mid-attempt.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookAttempt(Base):
    """The log: one HTTP attempt, what came back and how long it took."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_endpoint_id_attempted_at", "endpoint_id", "attempted_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    message_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_messages.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    response_body: Mapped[str | None] = mapped_column(Text, default=None)
    error: Mapped[str | None] = mapped_column(String(500), default=None)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    succeeded: Mapped[bool] = mapped_column(Boolean, default=False)


class LeadTimer(Base):
    """A deadline kept in the database, fired by whichever worker claims it once due.

    kind `first_contact` (mark: minutes after turning hot; the window's mark is the overdue
    notice), `cart_abandoned` (mark 0) or `cart_follow_up` (mark 1..3). `episode` names what
    the timer belongs to (the hot spell, the cart), so that each fires at most once."""

    __tablename__ = "lead_timers"
    __table_args__ = (
        UniqueConstraint("lead_id", "kind", "episode", "mark"),
        Index("ix_lead_timers_status_due_at", "status", "due_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    lead_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    episode: Mapped[str] = mapped_column(String(64))
    mark: Mapped[float] = mapped_column(Float)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # pending -> fired | cancelled
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class LeadContact(Base):
    """A contact a salesperson made with a lead (the first one stops the speed-to-lead clock)."""

    __tablename__ = "lead_contacts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    lead_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("leads.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(16))
    by: Mapped[str | None] = mapped_column(String(200), default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
