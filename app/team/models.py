"""The people of a site (`users`), their personal API tokens (`api_tokens`), their sign-in
sessions (`user_sessions`) and the failed sign-ins that rate limiting counts
(`sign_in_failures`). Tokens and session ids are random (256 bits) and stored as their SHA-256
only, like the site's secret key; passwords are Argon2id hashes (app.team.passwords)."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigIntPK, JSONType, UTCDateTime, new_id, utcnow

ROLES = ("admin", "manager")


class User(Base):
    """A person of one site. `email` is stored lower-cased: unique per site, whatever its case."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("site_id", "email"),
        CheckConstraint("role IN ('admin', 'manager')", name="role"),
        # Sign-in without a site looks the email up across sites.
        Index("ix_users_email", "email"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    # {"mon": {"start": "09:00", "end": "18:00"}, ..., "sun": null}: see app.team.schemas.
    working_hours: Mapped[dict[str, Any]] = mapped_column(JSONType)
    on_duty: Mapped[bool] = mapped_column(Boolean, default=True)
    # Assignment (app.team.assignment): a manager with this many open hot leads gets no new one
    # (null: no limit); an on-call person gets hot leads when no manager is on duty.
    max_open_hot_leads: Mapped[int | None] = mapped_column(Integer, default=None)
    on_call: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """A personal API token (`lh_pat_...`): acts as its user, with the user's current role."""

    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserSession(Base):
    """A dashboard sign-in: the cookie carries the id, the table only its SHA-256. The CSRF
    token is returned to the page at sign-in and must come back in `X-CSRF-Token` with every
    cookie-authenticated change (it is no credential on its own)."""

    __tablename__ = "user_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SignInFailure(Base):
    """One failed sign-in, under the SHA-256 of what it is counted by (`email:...` or `ip:...`):
    in the database so that the limit holds across server processes and replicas."""

    __tablename__ = "sign_in_failures"
    __table_args__ = (Index("ix_sign_in_failures_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TeamSettings(Base):
    """A site's escalation ladder and what happens outside everybody's working hours
    (app.team.escalation). No row: the defaults."""

    __tablename__ = "team_settings"

    site_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    # "on_call" (the on-call person gets the lead, the clock runs) or "next_opening" (the
    # clock and the ladder start when the earliest manager's working hours open).
    off_hours: Mapped[str] = mapped_column(String(16), default="on_call")
    # [{"after_minutes": 5, "action": "remind_owner"}, ...]: see app.team.escalation.
    ladder: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AssignmentRule(Base):
    """An admin's rule: a hot lead matching every condition given goes to one of `user_ids`
    (round-robin among them), before the site-wide round-robin. Rules are tried by
    `position`, then creation."""

    __tablename__ = "assignment_rules"
    __table_args__ = (Index("ix_assignment_rules_site_id_position", "site_id", "position"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer, default=0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # {"cities": [...], "categories": [...], "sources": [...], "cart_min": .., "cart_max": ..}
    conditions: Mapped[dict[str, Any]] = mapped_column(JSONType)
    user_ids: Mapped[list[str]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
