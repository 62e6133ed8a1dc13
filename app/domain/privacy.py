"""Suppressions: the identifiers of erased people, kept only as salted hashes, so that later
events carrying them are dropped at ingestion (`DELETE /v1/people`, app.privacy).

An identifier is a (kind, value) pair: `user` (userId), `anonymous` (anonymousId) or `email`
(lower-cased). Its hash is SHA-256 over the site's random salt (`privacy_salts`, made at the
site's first erasure) and `kind:value`; PostgreSQL computes the same hash in ingestion's lookup
statement (`sha256(salt || convert_to(kind || ':' || value, 'UTF8'))`), so the check costs
no round trip. The salt lives in the database: the hashes are pseudonyms (what a shop needs to
honour an objection), not anonymous data, and they cannot be matched across sites.
"""

import hashlib
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigIntPK, UTCDateTime, utcnow

IdentifierKey = tuple[uuid.UUID, str, str]  # (site id, kind, value)
KINDS = ("user", "anonymous", "email")


class PrivacySalt(Base):
    __tablename__ = "privacy_salts"

    site_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    salt: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Suppression(Base):
    """One erased identifier of a site, as its hash (`identifier_hash`)."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("site_id", "hash"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def identifier_hash(salt: bytes, kind: str, value: str) -> str:
    """The stored form of an identifier (hex); the PostgreSQL expression in
    app.ingestion.bulk computes the same."""
    return hashlib.sha256(salt + f"{kind}:{value}".encode()).hexdigest()


def normalize_email(value: Any) -> str | None:
    """An email as identifiers compare it: trimmed and lower-cased; None if not text."""
    if not isinstance(value, str):
        return None
    email = value.strip().lower()
    return email[:255] or None


def event_identifiers(
    site_id: uuid.UUID,
    user_id: str | None,
    anonymous_id: str | None,
    previous_id: str | None,
    traits: dict[str, Any],
) -> Iterator[IdentifierKey]:
    """The identifiers an event carries that a suppression can match."""
    if user_id:
        yield site_id, "user", user_id
    if anonymous_id:
        yield site_id, "anonymous", anonymous_id
    if previous_id:  # alias: either kind
        yield site_id, "user", previous_id
        yield site_id, "anonymous", previous_id
    if "email" in traits:
        email = normalize_email(traits["email"])
        if email:
            yield site_id, "email", email
