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
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigIntPK, JSONType, UTCDateTime, new_id, utcnow

HOT_LIVE = "became_hot_at IS NOT NULL AND merged_into_id IS NULL"
AWAITING_CONTACT = (
    "contact_by IS NOT NULL AND first_contacted_at IS NULL AND merged_into_id IS NULL"
    " AND status = 'new'"
)

DUE = "next_check_at IS NOT NULL AND merged_into_id IS NULL"


class Lead(Base):
    """A visitor's profile, kept current at ingestion (no recomputation over history)."""

    __tablename__ = "leads"
    # The partial indexes leave out merged leads (every dashboard read does) and the rows a
    # range on their key cannot match, so they stay small; migration 0008 builds them.
    __table_args__ = (
        Index("ix_leads_site_id_updated_at", "site_id", "updated_at"),
        Index("ix_leads_site_id_score", "site_id", "score"),
        # The funnel: leads first seen in a period.
        Index(
            "ix_leads_site_id_first_seen_at",
            "site_id",
            "first_seen_at",
            postgresql_where=text("merged_into_id IS NULL"),
            sqlite_where=text("merged_into_id IS NULL"),
        ),
        # The list filtered by a status few leads have (won, lost): without it a page walks the
        # sort order's index through every lead (migration 0011).
        Index(
            "ix_leads_site_id_status",
            "site_id",
            "status",
            postgresql_where=text("merged_into_id IS NULL"),
            sqlite_where=text("merged_into_id IS NULL"),
        ),
        # Speed to lead: leads that turned hot in a period, with their first contact, so that
        # the read is an index-only scan (migration 0011; 0008 had the first two columns).
        Index(
            "ix_leads_site_id_became_hot_at_contacted",
            "site_id",
            "became_hot_at",
            "first_contacted_at",
            postgresql_where=text(HOT_LIVE),
            sqlite_where=text(HOT_LIVE),
        ),
        # Speed to lead: hot leads nobody has contacted yet, overdue after contact_by; the
        # status in the condition makes the count index-only (migration 0011).
        Index(
            "ix_leads_site_id_contact_by_new",
            "site_id",
            "contact_by",
            postgresql_where=text(AWAITING_CONTACT),
            sqlite_where=text(AWAITING_CONTACT),
        ),
        # The temperature refresher's due leads, oldest due first (migration 0012).
        Index(
            "ix_leads_next_check_at",
            "next_check_at",
            postgresql_where=text(DUE),
            sqlite_where=text(DUE),
        ),
        # Assignment: a person's leads today and open ones (app.team.assignment), `owner=` filters.
        Index(
            "ix_leads_owner_id_assigned_at",
            "owner_id",
            "owner_assigned_at",
            postgresql_where=text("owner_id IS NOT NULL"),
            sqlite_where=text("owner_id IS NOT NULL"),
        ),
        # A lead's card lists the leads merged into it; also what ON DELETE SET NULL looks up.
        Index(
            "ix_leads_merged_into_id",
            "merged_into_id",
            postgresql_where=text("merged_into_id IS NOT NULL"),
            sqlite_where=text("merged_into_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    # Set when this lead was merged into another: the row stays so old ids still resolve.
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("leads.id", ondelete="SET NULL"), default=None
    )
    user_id: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    first_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    visit_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    visits: Mapped[int] = mapped_column(Integer, default=0)
    page_views: Mapped[int] = mapped_column(Integer, default=0)
    events_count: Mapped[int] = mapped_column(Integer, default=0)
    session_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    engaged_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    orders: Mapped[int] = mapped_column(Integer, default=0)
    revenue: Mapped[float] = mapped_column(Float, default=0.0)
    identified: Mapped[bool] = mapped_column(Boolean, default=False)
    city: Mapped[str | None] = mapped_column(String(200), default=None)
    country: Mapped[str | None] = mapped_column(String(200), default=None)
    last_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    contacts: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    traits: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    interests: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    products_viewed: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    cart: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    subscribed: Mapped[bool | None] = mapped_column(Boolean, default=None)
    # The sales funnel: new -> contacted -> qualified -> won, or lost with a reason.
    # The server defaults are the migrations' (they filled the rows that existed when these
    # columns came); every writer sets the columns itself.
    status: Mapped[str] = mapped_column(String(16), default="new", server_default="new")
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    lost_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    lost_note: Mapped[str | None] = mapped_column(Text, default=None)
    # Scoring, kept current at ingestion (app.scoring.scorer.LeadScorer).
    score: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    temperature: Mapped[str] = mapped_column(String(8), default="cold", server_default="cold")
    score_state: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    rule_set_version: Mapped[int | None] = mapped_column(Integer, default=None)
    scored_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    became_hot_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Speed to lead: when first contact is due (hot + the first-contact window), and when made.
    contact_by: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    first_contacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # When the lead next shows differently with no new event (decay, a hold ending): the
    # temperature refresher looks at leads whose time came (engine.next_change_at).
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Who works the lead (app.team.assignment): set when it turns hot, by a claim, a handover
    # or an admin; null: nobody (no manager was on duty). Only lead_writes.set_owners writes
    # these two, never ingestion's whole-profile writes (LEAD_UPDATABLE leaves them out).
    # No foreign key: people are deactivated, never deleted (a site's deletion takes both),
    # and on SQLite adding one to `leads` would mean copying the table (and its triggers).
    owner_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, default=None)
    owner_assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


# sort=recent and its cursor: the order of the page query, read from the top.
Index(
    "ix_leads_site_id_last_seen_at",
    Lead.site_id,
    Lead.last_seen_at.desc().nulls_last(),
    Lead.id.desc(),
    postgresql_where=text("merged_into_id IS NULL"),
    sqlite_where=text("merged_into_id IS NULL"),
)


class LeadIdentity(Base):
    """An id a lead is known by (`anonymous` or `user`); unique per site."""

    __tablename__ = "lead_identities"
    __table_args__ = (UniqueConstraint("site_id", "kind", "value"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(255))
    lead_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("leads.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Event(Base):
    """An accepted event, stored as received (Segment spec fields), unique by messageId.

    An append-only log written only by ingestion, which always knows the site and lead it
    writes: it has no foreign keys, because PostgreSQL's per-row key checks (a lookup and a
    row lock on the site and the lead) would cost more than the insert itself
    (docs/performance.md)."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("site_id", "message_id"),
        Index("ix_events_lead_id_timestamp", "lead_id", "timestamp"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    site_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    message_id: Mapped[str] = mapped_column(String(255))
    lead_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    type: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(255))
    anonymous_id: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[str | None] = mapped_column(String(255))
    previous_id: Mapped[str | None] = mapped_column(String(255))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    original_timestamp: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    traits: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    context: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
