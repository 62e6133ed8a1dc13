"""Leads whose events are stored but whose profile, score or webhook side is behind them,
because that work failed (a bug, a consumer error): one `lead_repairs` row per lead until the
repair job (`repair_worker.py`) rebuilds the lead from its stored events."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Table, case
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from app import wakeups
from app.db import Base, UTCDateTime, utcnow

REPAIRS = "ingestion.lead_repairs"  # the repair loop's wake-up (app.wakeups)


class LeadRepair(Base):
    __tablename__ = "lead_repairs"
    __table_args__ = (Index("ix_lead_repairs_due_at", "due_at"),)

    lead_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True
    )
    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    # The earliest receipt among the events not folded in: the repair hands the events
    # received since then to the lead-change consumers (webhooks, timers) ...
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    # ... as a change from the lead as it was before them (None: the lead was new).
    temperature_before: Mapped[str | None] = mapped_column(String(8), default=None)
    identified_before: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(2000), default=None)


@dataclass(frozen=True, slots=True)
class RepairMark:
    lead_id: uuid.UUID
    site_id: uuid.UUID
    since: datetime
    temperature_before: str | None
    identified_before: bool
    error: str = ""  # what failed, if known for this lead


_repairs = cast(Table, LeadRepair.__table__)
# A failing repair waits longer each time: 10 s, 20 s, 40 s ... up to an hour.
FIRST_BACKOFF = timedelta(seconds=10)
MAX_BACKOFF = timedelta(hours=1)


def backoff(attempts: int) -> timedelta:
    return min(FIRST_BACKOFF * 2 ** min(attempts - 1, 20), MAX_BACKOFF)


async def mark_for_repair(
    conn: AsyncConnection, marks: list[RepairMark], error: str, now: datetime | None = None
) -> None:
    """Record (in the caller's transaction) that these leads need a repair, due now. A lead
    already marked keeps its earliest `since` and the state from before it."""
    if not marks:
        return
    await wakeups.notify(conn, REPAIRS)
    now = now or utcnow()
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(_repairs)
    new, old = stmt.excluded, _repairs.c
    stmt = stmt.on_conflict_do_update(
        index_elements=["lead_id"],
        set_={
            "since": case((new.since < old.since, new.since), else_=old.since),
            "due_at": new.due_at,
            "error": new.error,
        },
    )
    await conn.execute(
        stmt,
        [
            {
                "lead_id": m.lead_id,
                "site_id": m.site_id,
                "since": m.since,
                "temperature_before": m.temperature_before,
                "identified_before": m.identified_before,
                "created_at": now,
                "due_at": now,
                "attempts": 0,
                "error": (m.error or error)[:2000],
            }
            for m in marks
        ],
    )
