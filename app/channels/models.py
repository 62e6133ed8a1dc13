"""The channels' own tables: a site's Telegram bot (`telegram_bots`), the deep-link codes that
link a person's Telegram chat (`channel_link_codes`), the one-click links already used
(`used_action_links`) and the Telegram updates already handled (`telegram_updates`). A
person's channel itself is a delivery target of the outbox: a row of `webhook_endpoints` with
its `kind` and `user_id` (app.webhooks.models)."""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow


class TelegramBot(Base):
    """A site's bot. The token is a credential (whoever has it is the bot): stored encrypted
    (app.crypto). The webhook's secret token is kept as its SHA-256 only: it is compared, never
    sent again."""

    __tablename__ = "telegram_bots"

    site_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    token_encrypted: Mapped[str] = mapped_column(Text)
    username: Mapped[str] = mapped_column(String(64))
    # webhook: Telegram posts updates to us; polling: a worker asks (getUpdates).
    mode: Mapped[str] = mapped_column(String(16))
    webhook_secret_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    # Long polling: the next update id to ask for (Telegram forgets what was confirmed).
    update_offset: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChannelLinkCode(Base):
    """A single-use code that links the Telegram chat that sends `/start <code>` to its person.
    Stored as its SHA-256: the code in clear is shown once."""

    __tablename__ = "channel_link_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class UsedActionLink(Base):
    """A one-click link that has acted: a second use is refused. Kept until it would have
    expired anyway (`expires_at`)."""

    __tablename__ = "used_action_links"

    link_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    lead_id: Mapped[uuid.UUID]
    action: Mapped[str] = mapped_column(String(16))
    used_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TelegramUpdateSeen(Base):
    """An update of a site's bot that was handled: Telegram sends an update again when it saw
    no answer (a timeout, a restart), and a second "Contacted" must not record a second
    contact. Inserted in the update's own transaction; kept for a while after
    (`SEEN_DAYS` in app.channel_actions.service): Telegram keeps an update 24 hours."""

    __tablename__ = "telegram_updates"

    site_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("telegram_bots.site_id", ondelete="CASCADE"), primary_key=True
    )
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
