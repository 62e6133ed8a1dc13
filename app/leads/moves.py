"""Temperature moves: how many leads moved from one temperature to another, and when, for
the funnel's "how many moved between ready, interested and cold".

A consumer of the lead-change port (after the webhooks' and audiences'), so every move is
counted whoever makes it: ingestion, the temperature refresher (decay), re-scoring, repairs.
Each transaction appends one row per site and kind of move (append-only, as the funnel's
deltas: concurrent writers never wait on each other for a counter row); a new lead is not a
move (it is counted by the funnel where it starts)."""

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import utcnow
from app.domain.changes import LeadChange
from app.leads.models import TemperatureMove

_moves = cast(Table, TemperatureMove.__table__)


class TemperatureMoves:
    """The `AfterGroup` consumer that records moves (picklable: no state but the clock)."""

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        self._now = now

    async def __call__(self, conn: AsyncConnection, changes: list[LeadChange]) -> None:
        counts = Counter(
            (c.profile["site_id"], c.previous_temperature, c.profile["temperature"])
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
                {"site_id": site, "at": at, "from_temperature": a, "to_temperature": b, "leads": n}
                for (site, a, b), n in counts.items()
            ],
        )
