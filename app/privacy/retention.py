"""Retention: events stored longer ago than `PRIVACY__EVENT_RETENTION_DAYS` are deleted by a
background loop, oldest first, in small transactions; lead profiles and scores stay.

Events have no index on time (it would cost every ingestion insert, docs/performance.md), but
their ids grow with their receipt, so the oldest are the lowest ids: each batch reads the first
ids of the primary key and deletes those received before the cutoff. A batch that finds one
newer event ends the pass (the rest is newer; an event a few milliseconds out of order waits
for the next pass). On PostgreSQL rows another transaction holds (a merge moving a lead's
events) are skipped (`SKIP LOCKED`), so the loop never waits on ingestion, and ingestion waits
at most one short batch on it. One process of the deployment runs it (the lease
`privacy.event_retention`).
"""

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app import leases, wakeups
from app.background import BackgroundContext, BackgroundLoop
from app.config import PrivacySettings
from app.db import utcnow, writer
from app.domain.tables import Event

logger = logging.getLogger(__name__)

LEASE = "privacy.event_retention"
_events = cast(Table, Event.__table__)


async def prune_events(engine: AsyncEngine, settings: PrivacySettings, now: datetime) -> int:
    """Delete the events received before `now` minus the retention, a batch per transaction;
    answers how many were deleted. Nothing without a retention."""
    if settings.event_retention_days is None:
        return 0
    cutoff = now - timedelta(days=settings.event_retention_days)
    total = 0
    while True:
        deleted, more = await _prune_batch(writer(engine), cutoff, settings.retention_batch_events)
        total += deleted
        if not more or deleted == 0:
            return total


async def _prune_batch(engine: AsyncEngine, cutoff: datetime, size: int) -> tuple[int, bool]:
    """Delete the old events among the `size` lowest ids; answers (deleted, whether all of
    them were old: more may follow)."""
    async with engine.begin() as conn:
        rows = (
            await conn.execute(
                select(_events.c.id, _events.c.received_at).order_by(_events.c.id).limit(size)
            )
        ).all()
        old = [event_id for event_id, received_at in rows if received_at < cutoff]
        if not old:
            return 0, False
        if conn.dialect.name == "postgresql":
            targets: Any = (
                select(_events.c.id)
                .where(_events.c.id.in_(old))
                .with_for_update(skip_locked=True)
                .scalar_subquery()
            )
            statement = delete(_events).where(_events.c.id.in_(targets))
        else:
            statement = delete(_events).where(_events.c.id.in_(old))
        result = await conn.execute(statement)
        return int(cast(Any, result).rowcount or 0), len(old) == len(rows)


async def retention_loop(
    context: BackgroundContext,
    stop: asyncio.Event,
    *,
    clock: Callable[[], datetime] = utcnow,
    iterations: int | None = None,
) -> None:
    """`prune_events` every `retention_interval_seconds`, in the one process holding the
    lease; idle (one check an interval) when no retention is set."""
    settings = context.settings.privacy
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    length = timedelta(seconds=settings.retention_lease_seconds)
    done = 0
    try:
        while not stop.is_set() and (iterations is None or done < iterations):
            if iterations is None:
                # An interval after start, as the temperature refresher: a short-lived process
                # (a test's app) never prunes under the requests it serves.
                await wakeups.sleep(stop, settings.retention_interval_seconds)
                if stop.is_set():
                    break
            done += 1
            if settings.event_retention_days is None:
                continue
            if await leases.take(writer(context.engine), LEASE, holder, clock(), length):
                pruned = await prune_events(context.engine, settings, clock())
                if pruned:
                    logger.info("retention: deleted %d events", pruned)
    finally:
        with contextlib.suppress(Exception):  # the lease expires anyway
            await leases.give_up(writer(context.engine), LEASE, holder)


LOOPS: list[tuple[str, BackgroundLoop]] = [("privacy.event_retention", retention_loop)]
