"""A site's saved audiences and their members.

- `audiences`: a name and filters (app.audiences.filters), and the state of the job that
  computes its members after it is created or edited (`computing`, with how far it got);
- `audience_members`: who is in it since when, kept current in the transaction of every lead
  change that moves a lead in or out (app.audiences.membership)."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType, UTCDateTime, new_id, utcnow

MEMBERSHIP_JOBS = "audiences.membership_jobs"  # the jobs loop's wake-up (app.wakeups)


class Audience(Base):
    __tablename__ = "audiences"
    __table_args__ = (
        Index("ix_audiences_site_id", "site_id"),
        # The membership job's claim: audiences whose members are being computed.
        Index(
            "ix_audiences_computing",
            "job_lease_until",
            postgresql_where=text("state = 'computing'"),
            sqlite_where=text("state = 'computing'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    filters: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Bumped by each edit: a job's batch writes only while the version it started on is current.
    version: Mapped[int] = mapped_column(Integer, default=1)
    # `computing` (the job goes through the site's leads by id, after `computed_after`), `ready`.
    state: Mapped[str] = mapped_column(String(16), default="computing")
    computed_after: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    job_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Whether the job's changes are sent as webhooks: not on creation (the first members are
    # the audience's list, read through the API), yes on an edit (leads enter and leave).
    job_notifies: Mapped[bool] = mapped_column(Boolean, default=False)


class AudienceMember(Base):
    __tablename__ = "audience_members"
    __table_args__ = (Index("ix_audience_members_lead_id", "lead_id"),)

    audience_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("audiences.id", ondelete="CASCADE"), primary_key=True
    )
    lead_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True
    )
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
