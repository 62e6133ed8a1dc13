"""Temperature moves: how many leads moved from one temperature to another, and when, for
the funnel's "how many moved between ready, interested and cold".

A consumer of the lead-change port (after the webhooks' and audiences'), so every move is
counted whoever makes it: ingestion, the temperature refresher (decay), re-scoring, repairs.
Each transaction appends one row per site and kind of move (append-only, as the funnel's
deltas: concurrent writers never wait on each other for a counter row); a new lead is not a
move (it is counted by the funnel where it starts).

The loop `leads.temperature_moves` compacts the rows of every hour that has ended into one row
per site, hour and kind, so the funnel's read of a month is at most 720 x 6 rows a site
whatever its traffic (plus the current hour's). A period's edges are then counted to the hour
for moves older than the current hour."""

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import wakeups
from app.background import BackgroundContext
from app.db import utcnow, writer
from app.domain.changes import LeadChange
from app.leads.models import TemperatureMove

_moves = cast(Table, TemperatureMove.__table__)


class TemperatureMoves:
    """The `AfterGroup` consumer that records moves (picklable: no state but the clock)."""

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self._now = now

    async def __call__(self, conn: AsyncConnection, changes: list[LeadChange]) -> None:
        counts = Counter(
            # (a job's process may hand ids over as text)
            (uuid.UUID(str(c.profile["site_id"])), c.previous_temperature, c.profile["temperature"])
            for c in changes
            if c.previous_temperature is not None
            and c.previous_temperature != c.profile["temperature"]
        )
        if not counts:
            return
        at = self._now() if self._now is not None else utcnow()
        await conn.execute(
            insert(_moves),
            [
                {
                    "site_id": site,
                    "at": at,
                    "from_temperature": a,
                    "to_temperature": b,
                    "leads": n,
                    "compacted": False,
                }
                for (site, a, b), n in counts.items()
            ],
        )


logger = logging.getLogger(__name__)

# One statement: the rows of ended hours are deleted and their sums inserted, so a row is
# counted once whatever runs at the same time (a concurrent pass waits, then finds it gone).
_PG_COMPACT = text(
    """
    WITH raw AS (
        DELETE FROM temperature_moves WHERE NOT compacted AND at < :before
        RETURNING site_id, at, from_temperature, to_temperature, leads
    )
    INSERT INTO temperature_moves
        (site_id, at, from_temperature, to_temperature, leads, compacted)
    SELECT site_id, date_trunc('hour', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
           from_temperature, to_temperature, sum(leads), true
    FROM raw GROUP BY 1, 2, 3, 4
    """
)


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


async def compact(engine: AsyncEngine, now: datetime) -> None:
    """Fold the moves of every hour ended by `now` into one row per site, hour and kind."""
    before = floor_hour(now)
    async with writer(engine).begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(_PG_COMPACT, {"before": before})
            return
        m = _moves
        rows = (
            await conn.execute(
                select(
                    m.c.id, m.c.site_id, m.c.at, m.c.from_temperature, m.c.to_temperature, m.c.leads
                ).where(m.c.compacted.is_(False), m.c.at < before)
            )
        ).all()
        if not rows:
            return
        sums: Counter[tuple[Any, ...]] = Counter()
        for row in rows:
            key = (row.site_id, floor_hour(row.at), row.from_temperature, row.to_temperature)
            sums[key] += row.leads
        await conn.execute(delete(m).where(m.c.id.in_([row.id for row in rows])))
        await conn.execute(
            insert(m),
            [
                {
                    "site_id": site,
                    "at": hour,
                    "from_temperature": a,
                    "to_temperature": b,
                    "leads": n,
                    "compacted": True,
                }
                for (site, hour, a, b), n in sums.items()
            ],
        )


async def compaction_loop(context: BackgroundContext, stop: asyncio.Event) -> None:
    """`compact` every `STATS__ROLLUP_INTERVAL_SECONDS`, as the funnel's rollup runs."""
    while not stop.is_set():
        await compact(context.engine, utcnow())
        await wakeups.sleep(stop, context.settings.stats.rollup_interval_seconds)


LOOPS = [("leads.temperature_moves", compaction_loop)]
