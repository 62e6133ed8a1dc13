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
depend on the number of leads.

Speed to lead's rollup (`speed_counts`, `speed_deltas`, by the UTC day a lead turned hot)
takes the same steps in the same transaction, holding the same row, with its own
`speed_rolled_until`: NULL until the site's first pass, which starts at its first hot lead."""

import asyncio
import logging
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    case,
    delete,
    func,
    insert,
    literal,
    literal_column,
    null,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app import wakeups
from app.background import BackgroundContext
from app.db import UTCDateTime, make_sessionmaker, sqlstate, utcnow, writer
from app.domain.tables import Lead
from app.leads.models import FunnelCount, FunnelDelta, FunnelRollup, SpeedCount, SpeedDelta
from app.leads.waits import bucket_sql
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


SPEED_KEYS = ("owner_id", "wait_bucket", "outcome", "lost_reason")


def speed_groups(dialect: str) -> tuple[ColumnElement[Any], ...]:
    """What speed to lead counts a live hot lead by: its owner, its wait's bucket (NULL: not
    contacted), its outcome ('won', 'lost' or NULL) and, lost, its reason (as the triggers)."""
    wait = bucket_sql(dialect, "leads.became_hot_at", "leads.first_contacted_at")
    return (
        Lead.owner_id.expression,
        type_coerce(literal_column(wait), Integer()).label("wait_bucket"),
        case((Lead.status.in_(("won", "lost")), Lead.status)).label("outcome"),
        case((Lead.status == "lost", Lead.lost_reason)).label("lost_reason"),
    )


async def _count_speed_days(
    session: AsyncSession, site_id: uuid.UUID, start: datetime, end: datetime
) -> None:
    """Replace speed to lead's counts of the days in [start, end) with the leads': a row per
    owner and outcome (hot leads), and a row per owner of the contacted ones' waits."""
    dialect = session.get_bind().dialect.name
    await session.execute(
        delete(SpeedCount).where(
            SpeedCount.site_id == site_id, SpeedCount.day >= start, SpeedCount.day < end
        )
    )
    day = day_of(dialect, Lead.became_hot_at)
    owner, wait, outcome, reason = speed_groups(dialect)
    hot = (
        Lead.site_id == site_id,
        Lead.merged_into_id.is_(None),
        Lead.became_hot_at >= start,
        Lead.became_hot_at < end,
    )
    columns = ["site_id", "day", *SPEED_KEYS, "hot_leads", "contacted"]
    none = null()
    by_outcome = (
        select(Lead.site_id, day, owner, none, outcome, reason, func.count(), literal(0))
        .where(*hot)
        .group_by(Lead.site_id, day, owner, outcome, reason)
    )
    await session.execute(insert(SpeedCount).from_select(columns, by_outcome))
    by_wait = (
        select(day, owner, wait, func.count())
        .where(*hot, Lead.first_contacted_at.is_not(None))
        .group_by(day, owner, wait)
    )
    histograms: dict[tuple[datetime, Any], Counter] = defaultdict(Counter)
    for counted_day, owner_id, bucket, leads in await session.execute(by_wait):
        histograms[(counted_day, owner_id)][bucket] += leads
    await _insert_histograms(session, site_id, histograms)


async def _insert_histograms(
    session: AsyncSession, site_id: uuid.UUID, histograms: dict[tuple[datetime, Any], Counter]
) -> None:
    """One row per (day, owner): its waits' histogram."""
    rows = []
    for (day, owner_id), histogram in histograms.items():
        waits = sorted([bucket, n] for bucket, n in histogram.items() if n)
        if waits:
            rows.append(
                {
                    "site_id": site_id,
                    "day": day,
                    "owner_id": owner_id,
                    "wait_bucket": None,
                    "outcome": None,
                    "lost_reason": None,
                    "hot_leads": 0,
                    "contacted": sum(n for _, n in waits),
                    "waits": waits,
                }
            )
    if rows:
        await session.execute(insert(SpeedCount), rows)


async def _fold_speed(
    session: AsyncSession, site_id: uuid.UUID, day: datetime, changes: list[tuple[Any, ...]]
) -> None:
    """Add the deltas `changes` ((owner, bucket, outcome, reason, hot, contacted)) to the
    counts of a rolled-up day."""
    where = (SpeedCount.site_id == site_id, SpeedCount.day == day)
    hot: Counter = Counter()  # (owner, outcome, reason) -> hot leads
    histograms: dict[tuple[datetime, Any], Counter] = defaultdict(Counter)
    rows = await session.execute(
        select(
            SpeedCount.owner_id,
            SpeedCount.outcome,
            SpeedCount.lost_reason,
            SpeedCount.hot_leads,
            SpeedCount.waits,
        ).where(*where)
    )
    for owner_id, outcome, reason, hot_leads, waits in rows:
        if waits is None:
            hot[(owner_id, outcome, reason)] += hot_leads
        for bucket, n in waits or ():
            histograms[(day, owner_id)][bucket] += n
    for owner_id, bucket, outcome, reason, hot_leads, contacted in changes:
        hot[(owner_id, outcome, reason)] += hot_leads
        if bucket is not None:
            histograms[(day, owner_id)][bucket] += contacted
    await session.execute(delete(SpeedCount).where(*where))
    outcome_rows = [
        {
            "site_id": site_id,
            "day": day,
            "owner_id": owner_id,
            "wait_bucket": None,
            "outcome": outcome,
            "lost_reason": reason,
            "hot_leads": n,
            "contacted": 0,
        }
        for (owner_id, outcome, reason), n in hot.items()
        if n
    ]
    if outcome_rows:
        await session.execute(insert(SpeedCount), outcome_rows)
    await _insert_histograms(session, site_id, histograms)


async def _roll_up_speed(
    session: AsyncSession, site_id: uuid.UUID, today: datetime, rolled_until: datetime | None
) -> bool:
    """Speed to lead's step, as the funnel's (the caller holds the site's rollup row): True
    when it counted more days."""
    first = rolled_until is None
    if rolled_until is None:  # the site's first pass: from its first hot lead's day
        first_hot = await session.scalar(
            select(func.min(Lead.became_hot_at)).where(
                Lead.site_id == site_id, Lead.merged_into_id.is_(None)
            )
        )
        rolled_until = min(floor_day(first_hot), today) if first_hot is not None else today
    taken = await session.execute(
        delete(SpeedDelta)
        .where(SpeedDelta.site_id == site_id)
        .returning(
            SpeedDelta.day,
            SpeedDelta.owner_id,
            SpeedDelta.wait_bucket,
            SpeedDelta.outcome,
            SpeedDelta.lost_reason,
            SpeedDelta.hot_leads,
            SpeedDelta.contacted,
        )
    )
    by_day: dict[datetime, list[tuple[Any, ...]]] = defaultdict(list)
    for day, *change in taken:
        # Later days are counted from their leads in their turn; on the first pass every
        # day is (the days before the first hot lead have none left to count).
        if day < rolled_until and not first:
            by_day[day].append(tuple(change))
    for day, changes in sorted(by_day.items()):
        await _fold_speed(session, site_id, day, changes)
    until = min(today, rolled_until + CHUNK_DAYS * DAY)
    if until > rolled_until:
        await _count_speed_days(session, site_id, rolled_until, until)
    if first or until > rolled_until:
        await session.execute(
            update(FunnelRollup)
            .where(FunnelRollup.site_id == site_id)
            .values(speed_rolled_until=until)
        )
    return until > rolled_until


async def roll_up_site(session: AsyncSession, site_id: uuid.UUID, now: datetime) -> bool:
    """One step for one site, in the session's transaction (the caller commits): its deltas,
    then up to CHUNK_DAYS more complete days. True when it rolled more days up (there may be
    more), False when the site is up to date (or another worker holds it)."""
    dialect = session.get_bind().dialect.name
    today = floor_day(now)
    if await session.scalar(select(Site.id).where(Site.id == site_id)) is None:
        # A deleted site: its counts went with it (cascade), its deltas go now.
        await session.execute(delete(FunnelDelta).where(FunnelDelta.site_id == site_id))
        await session.execute(delete(SpeedDelta).where(SpeedDelta.site_id == site_id))
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
    held = (
        await session.execute(
            select(FunnelRollup.rolled_until, FunnelRollup.speed_rolled_until)
            .where(FunnelRollup.site_id == site_id)
            .with_for_update(skip_locked=True)
        )
    ).first()
    if held is None:  # another worker is on it
        return False
    rolled_until, speed_rolled_until = held
    speed_more = await _roll_up_speed(session, site_id, today, speed_rolled_until)
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
    return until > rolled_until or speed_more


async def roll_up(engine: AsyncEngine, now: datetime) -> int:
    """One pass over the sites with deltas or complete days not rolled up; the number of steps
    taken."""
    steps_engine = writer(engine)  # each step reads, then writes
    if engine.dialect.name == "postgresql":  # one snapshot for the deltas and the leads
        steps_engine = steps_engine.execution_options(isolation_level="REPEATABLE READ")
    sessionmaker = make_sessionmaker(steps_engine)
    async with make_sessionmaker(engine)() as session:
        changed = set((await session.scalars(select(FunnelDelta.site_id).distinct())).all())
        changed |= set((await session.scalars(select(SpeedDelta.site_id).distinct())).all())
        behind = set(
            (
                await session.scalars(
                    select(Site.id)
                    .outerjoin(FunnelRollup, FunnelRollup.site_id == Site.id)
                    .where(
                        (FunnelRollup.rolled_until.is_(None))
                        | (FunnelRollup.rolled_until < floor_day(now))
                        | (FunnelRollup.speed_rolled_until.is_(None))
                        | (FunnelRollup.speed_rolled_until < floor_day(now))
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
            await wakeups.sleep(stop, context.settings.stats.rollup_interval_seconds)


LOOPS = [("leads.funnel_rollup", funnel_rollup_loop)]
