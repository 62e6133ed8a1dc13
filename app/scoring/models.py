import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType, UTCDateTime, new_id, utcnow


class RuleSetVersion(Base):
    """A published rule set. The highest version of a site is active; older ones stay readable.
    A site with none scores with the built-in default rule set, as version 1."""

    __tablename__ = "rule_sets"
    __table_args__ = (UniqueConstraint("site_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(Text, default=None)  # why it was published
    # Who published it: a person's email, or "secret key"; None before revision 0017.
    author: Mapped[str | None] = mapped_column(String(320), default=None)


class RescoreJob(Base):
    """Re-scoring a site's leads after a new rule-set version, in the background, with progress.
    Workers claim jobs with row locks (SKIP LOCKED) and a lease that expires if they die."""

    __tablename__ = "rescore_jobs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    site_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), index=True
    )
    rule_set_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(
        String(16), default="pending"
    )  # pending/running/done/failed
    total: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)


class PreviewJob(Base):
    """A draft rule set previewed against a site's stored events in the background: the draft,
    progress, and the answer when done. Claimed like re-scoring jobs (SKIP LOCKED and a lease
    that expires if the worker dies); each claim counts an attempt, and a run whose attempt is
    no longer the job's stops. Finished jobs are deleted a day after they finished."""

    __tablename__ = "preview_jobs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    site_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), index=True
    )
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)  # the draft
    at: Mapped[datetime] = mapped_column(UTCDateTime)  # the moment leads are evaluated at
    limit: Mapped[int] = mapped_column(Integer)  # changed leads listed in the result
    status: Mapped[str] = mapped_column(
        String(16), default="pending"
    )  # pending/running/done/failed/cancelled
    total: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
