"""The funnel's rollup (tables in app.leads.models): per site, the counts of the leads first
seen on each UTC day, so that the funnel of a period reads one row per day and group instead
of every lead of the period.

One pass (`roll_up`), per site, in one transaction holding the site's rollup row, on one
snapshot (REPEATABLE READ on PostgreSQL; SQLite has one writer), so that a change is either
in the deltas it takes or in the leads it counts, never both nor neither:
1. take the site's deltas (deleting them) and add those of rolled-up days to their counts
   (the cost is the number of changes, not of leads); the deltas of days not rolled up yet
   are dropped: those days are counted from their leads when their turn comes;
2. count the next complete days from the leads (up to `CHUNK_DAYS` a transaction, so a
   site's first pass over its history is in short steps) and move `rolled_until` on.
A pass with nothing to do reads the (empty) deltas and the sites behind: its cost does not
depend on the number of leads."""

import asyncio
import contextlib
import logging
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, insert, select, type_coerce, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.background import BackgroundContext
from app.db import UTCDateTime, make_sessionmaker, sqlstate, utcnow, writer
from app.domain.tables import Lead
from app.leads.models import FunnelCount, FunnelDelta, FunnelRollup
from app.sites.models import Site

logger = logging.getLogger(__name__)

# serialization_failure, deadlock_detected: another replica's pass took the same step first.
CONFLICT_SQLSTATES = {"40001", "40P01"}

CHUNK_DAYS = 31
GROUP_COLUMNS = ("temperature", "status", "lost_reason", "identified", "contacted")
DAY = timedelta(days=1)


def floor_day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def ceil_day(moment: datetime) -> datetime:
    day = floor_day(moment)
    return day if day == moment else day + DAY


def day_of(dialect: str, column: Any) -> ColumnElement[datetime]:
    """The UTC midnight starting the day of a timestamp column (as the triggers compute it)."""
    if dialect == "postgresql":
        expr = func.date_trunc("day", column, "UTC")
    else:  # naive UTC text (app.db.UTCDateTime)
        expr = func.strftime("%Y-%m-%d 00:00:00.000000", column)
    return type_coerce(expr, UTCDateTime())


def _insert_ignore(dialect: str) -> Any:
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(FunnelRollup)


async def _count_days(
    session: AsyncSession, site_id: uuid.UUID, start: datetime, end: datetime
) -> None:
    """Replace the counts of the days in [start, end) with the leads' (UTC midnights)."""
    dialect = session.get_bind().dialect.name
    await session.execute(
        delete(FunnelCount).where(
            FunnelCount.site_id == site_id, FunnelCount.day >= start, FunnelCount.day < end
        )
    )
    day = day_of(dialect, Lead.first_seen_at)
    contacted = Lead.first_contacted_at.is_not(None)
    groups = (Lead.temperature, Lead.status, Lead.lost_reason, Lead.identified, contacted)
    counted = (
        select(Lead.site_id, day, *groups, func.count())
        .where(
            Lead.site_id == site_id,
            Lead.merged_into_id.is_(None),
            Lead.first_seen_at >= start,
            Lead.first_seen_at < end,
        )
        .group_by(Lead.site_id, day, *groups)
    )
    columns = ["site_id", "day", *GROUP_COLUMNS, "leads"]
    await session.execute(insert(FunnelCount).from_select(columns, counted))


async def _fold(session: AsyncSession, site_id: uuid.UUID, day: datetime, changes: Counter) -> None:
    """Add `changes` (group -> leads) to the counts of a rolled-up day."""
    groups = (
        FunnelCount.temperature,
        FunnelCount.status,
        FunnelCount.lost_reason,
        FunnelCount.identified,
        FunnelCount.contacted,
    )
    where = (FunnelCount.site_id == site_id, FunnelCount.day == day)
    totals: Counter = Counter()
    for *group, leads in await session.execute(select(*groups, FunnelCount.leads).where(*where)):
        totals[tuple(group)] += leads
    totals.update(changes)
    await session.execute(delete(FunnelCount).where(*where))
    rows = [
        dict(zip(GROUP_COLUMNS, group, strict=True), site_id=site_id, day=day, leads=leads)
        for group, leads in totals.items()
        if leads
    ]
    if rows:
        await session.execute(insert(FunnelCount), rows)


async def roll_up_site(session: AsyncSession, site_id: uuid.UUID, now: datetime) -> bool:
    """One step for one site, in the session's transaction (the caller commits): its deltas,
    then up to CHUNK_DAYS more complete days. True when it rolled more days up (there may be
    more), False when the site is up to date (or another worker holds it)."""
    dialect = session.get_bind().dialect.name
    today = floor_day(now)
    if await session.scalar(select(Site.id).where(Site.id == site_id)) is None:
        # A deleted site: its counts went with it (cascade), its deltas go now.
        await session.execute(delete(FunnelDelta).where(FunnelDelta.site_id == site_id))
        return False
    first_seen = await session.scalar(
        select(func.min(Lead.first_seen_at)).where(
            Lead.site_id == site_id, Lead.merged_into_id.is_(None)
        )
    )
    start = floor_day(first_seen) if first_seen is not None else today
    await session.execute(
        _insert_ignore(dialect)
        .values(site_id=site_id, rolled_until=min(start, today), updated_at=now)
        .on_conflict_do_nothing()
    )
    rolled_until = await session.scalar(
        select(FunnelRollup.rolled_until)
        .where(FunnelRollup.site_id == site_id)
        .with_for_update(skip_locked=True)
    )
    if rolled_until is None:  # another worker is on it
        return False
    taken = await session.execute(
        delete(FunnelDelta)
        .where(FunnelDelta.site_id == site_id)
        .returning(
            FunnelDelta.day,
            FunnelDelta.temperature,
            FunnelDelta.status,
            FunnelDelta.lost_reason,
            FunnelDelta.identified,
            FunnelDelta.contacted,
            FunnelDelta.leads,
        )
    )
    by_day: dict[datetime, Counter] = defaultdict(Counter)
    for day, *group, leads in taken:
        if day < rolled_until:
            by_day[day][tuple(group)] += leads
    for day, changes in sorted(by_day.items()):
        await _fold(session, site_id, day, changes)
    until = min(today, rolled_until + CHUNK_DAYS * DAY)
    if until > rolled_until:
        await _count_days(session, site_id, rolled_until, until)
        await session.execute(
            update(FunnelRollup)
            .where(FunnelRollup.site_id == site_id)
            .values(rolled_until=until, updated_at=now)
        )
    return until > rolled_until


async def roll_up(engine: AsyncEngine, now: datetime) -> int:
    """One pass over the sites with deltas or complete days not rolled up; the number of steps
    taken."""
    steps_engine = writer(engine)  # each step reads, then writes
    if engine.dialect.name == "postgresql":  # one snapshot for the deltas and the leads
        steps_engine = steps_engine.execution_options(isolation_level="REPEATABLE READ")
    sessionmaker = make_sessionmaker(steps_engine)
    async with make_sessionmaker(engine)() as session:
        changed = set((await session.scalars(select(FunnelDelta.site_id).distinct())).all())
        behind = set(
            (
                await session.scalars(
                    select(Site.id)
                    .outerjoin(FunnelRollup, FunnelRollup.site_id == Site.id)
                    .where(
                        (FunnelRollup.rolled_until.is_(None))
                        | (FunnelRollup.rolled_until < floor_day(now))
                    )
                )
            ).all()
        )
    steps = 0
    for site_id in sorted(changed | behind):
        more = True
        while more:
            try:
                async with sessionmaker() as session, session.begin():
                    more = await roll_up_site(session, site_id, now)
            except DBAPIError as exc:
                if sqlstate(exc) not in CONFLICT_SQLSTATES:
                    raise
                # The step rolled back whole; whatever is left is taken by the next pass.
                logger.info(
                    "funnel rollup of site %s met a concurrent pass; left to the next", site_id
                )
                break
            steps += 1
    return steps


async def funnel_rollup_loop(
    context: BackgroundContext, stop: asyncio.Event, *, iterations: int | None = None
) -> None:
    """`roll_up` every `STATS__ROLLUP_INTERVAL_SECONDS`."""
    done = 0
    while not stop.is_set() and (iterations is None or done < iterations):
        done += 1
        steps = await roll_up(context.engine, utcnow())
        if steps:
            logger.debug("funnel rollup took %d steps", steps)
        if iterations is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    stop.wait(), timeout=context.settings.stats.rollup_interval_seconds
                )


LOOPS = [("leads.funnel_rollup", funnel_rollup_loop)]
