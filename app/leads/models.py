"""The funnel's rollup: per site and UTC day, the counts of the leads first seen that day by
what the funnel groups them on; what the funnel reads instead of the leads of whole days.

- `funnel_rollups`: per site, the day up to which every day is rolled up (`rolled_until`,
  a UTC midnight): the days before it have their counts in `funnel_counts` (none: no leads);
- `funnel_counts`: the counts of the rolled-up days;
- `funnel_deltas`: what changed since. Database triggers on `leads` (migration 0011) write,
  in the writing transaction, +n for the leads a statement inserts, and for an update that
  changes anything the funnel counts (temperature, status, lost reason, identified, first
  contact, first seen, merged) -1 for the lead as it was and +1 as it is, each in its day and
  group. No writer can forget one, and the counts plus the deltas are always the leads'
  funnel. The rollup loop (app.leads.rollup) folds the deltas into the counts. Append-only
  (no unique key), so writers never wait on each other for a row.
"""

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, BigIntPK, JSONType, UTCDateTime, utcnow


class FunnelRollup(Base):
    __tablename__ = "funnel_rollups"

    site_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    rolled_until: Mapped[datetime] = mapped_column(UTCDateTime)
    # Speed to lead's rollup (SpeedCount), held by the same row: NULL before its first pass.
    speed_rolled_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class _FunnelGroup:
    """What the funnel groups leads on: a day's count (`funnel_counts`) and a change to it
    (`funnel_deltas`) carry the same columns."""

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    day: Mapped[datetime] = mapped_column(UTCDateTime)
    temperature: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    lost_reason: Mapped[str | None] = mapped_column(String(32))
    identified: Mapped[bool] = mapped_column(Boolean)
    contacted: Mapped[bool] = mapped_column(Boolean)
    leads: Mapped[int] = mapped_column(Integer)


class FunnelCount(_FunnelGroup, Base):
    __tablename__ = "funnel_counts"
    __table_args__ = (Index("ix_funnel_counts_site_id_day", "site_id", "day"),)

    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))


class FunnelDelta(_FunnelGroup, Base):
    """Written by the triggers only. No foreign key: a key check per row on ingestion's path
    would cost more than the row (as for events); the loop drops the rows of deleted sites."""

    __tablename__ = "funnel_deltas"
    __table_args__ = (Index("ix_funnel_deltas_site_id_day", "site_id", "day"),)

    site_id: Mapped[uuid.UUID] = mapped_column(Uuid)


class _SpeedGroup:
    """What speed to lead groups hot leads on: a day's count (`speed_counts`) and a change to
    it (`speed_deltas`) carry the same columns."""

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    day: Mapped[datetime] = mapped_column(UTCDateTime)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    wait_bucket: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str | None] = mapped_column(String(8))
    lost_reason: Mapped[str | None] = mapped_column(String(32))
    hot_leads: Mapped[int] = mapped_column(Integer)
    contacted: Mapped[int] = mapped_column(Integer)


class SpeedCount(_SpeedGroup, Base):
    """Speed to lead's rollup: per site, UTC day of `became_hot_at` and current owner (NULL:
    unowned), the live leads that turned hot that day, in two kinds of rows: by outcome
    (`hot_leads`: outcome 'won', 'lost' with its reason, or NULL), and one row of their waits
    (`contacted`, and `waits`: [[bucket, contacted], ...] by the bucket of the wait,
    app.leads.waits). One row for the histogram, not one per bucket: at a few hundred hot
    leads a day nearly every contacted lead has a bucket of its own, and the read would cost a
    row per lead again. Days before the site's `funnel_rollups.speed_rolled_until` are
    counted; the changes since are `speed_deltas` (whose `wait_bucket` is the lead's)."""

    __tablename__ = "speed_counts"
    __table_args__ = (Index("ix_speed_counts_site_id_day", "site_id", "day"),)

    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    waits: Mapped[list[list[int]] | None] = mapped_column(JSONType, default=None)


class SpeedDelta(_SpeedGroup, Base):
    """Written by the triggers only (migration 0022), like `funnel_deltas`: for a lead that
    counts (hot, not merged), a row with its wait's bucket (NULL: not contacted), outcome and
    reason, hot_leads = +-1 and contacted = +-1 (0 when not contacted)."""

    __tablename__ = "speed_deltas"
    __table_args__ = (Index("ix_speed_deltas_site_id_day", "site_id", "day"),)

    site_id: Mapped[uuid.UUID] = mapped_column(Uuid)


class TemperatureMove(Base):
    """How many leads of a site moved from one temperature to another: one row per kind of
    move and transaction (app.leads.moves), appended like the deltas; then `compacted` into
    one row per site, hour and kind. No foreign key, as for the deltas: rows of a deleted site
    are never read."""

    __tablename__ = "temperature_moves"
    __table_args__ = (
        Index("ix_temperature_moves_site_id_at", "site_id", "at"),
        # The compaction's rows: those not compacted yet (the last minutes').
        Index(
            "ix_temperature_moves_raw_at",
            "at",
            postgresql_where=text("NOT compacted"),
            sqlite_where=text("NOT compacted"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    site_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    from_temperature: Mapped[str] = mapped_column(String(8))
    to_temperature: Mapped[str] = mapped_column(String(8))
    leads: Mapped[int] = mapped_column(Integer)
    # True: the sum of an hour's rows, `at` the hour's start.
    compacted: Mapped[bool] = mapped_column(Boolean, default=False)
