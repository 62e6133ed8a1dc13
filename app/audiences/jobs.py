"""Computing an audience's members after it is created or edited: a background job, never in
the request, through the site's leads by id in batches, each its own short transaction.

A batch locks its leads as ingestion does (in id order, FOR NO KEY UPDATE), so a group that
changes one of them meanwhile waits or is waited for, and the two never disagree: ingestion
evaluates every audience of the site, this one included, from its first moment. The batch
writes who entered or left, brings forward the leads' due times for the audience's time
conditions, and last moves the audience's cursor, only while the audience is still at the
version the job started on (an edit starts it over) and its lease is ours.

A batch's Python (a few hundred full lead rows decoded and evaluated) takes tens of
milliseconds: on PostgreSQL the jobs run in a thread with an engine of their own, so the
server's event loop (ingestion's requests) is never held that long."""

import asyncio
import dataclasses
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app import wakeups
from app.audiences.membership import Memberships, compiled
from app.audiences.models import MEMBERSHIP_JOBS, Audience
from app.background import BackgroundContext
from app.db import make_engine, make_sessionmaker, utcnow, writer
from app.domain import lead_writes
from app.domain.lead_rows import lead_row
from app.domain.tables import Lead
from app.scoring.scorer import RuleSetCache

logger = logging.getLogger(__name__)

_audiences = cast(Table, Audience.__table__)
_leads = cast(Table, Lead.__table__)
LEASE = timedelta(minutes=2)


class _Superseded(Exception):
    """The audience was edited or deleted, or another worker took the job: roll back."""


async def _claim(conn: AsyncConnection, now: datetime) -> Any | None:
    a = _audiences
    row = (
        await conn.execute(
            select(a)
            .where(
                a.c.state == "computing",
                or_(a.c.job_lease_until.is_(None), a.c.job_lease_until < now),
            )
            .order_by(a.c.updated_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
    ).first()
    if row is None:
        return None
    await conn.execute(update(a).where(a.c.id == row.id).values(job_lease_until=now + LEASE))
    return row


async def _batch(
    conn: AsyncConnection,
    audience: Any,
    after: uuid.UUID | None,
    memberships: Memberships,
    now: datetime,
    size: int,
) -> uuid.UUID | None:
    """One batch of the site's live leads after `after`; answers the last one's id, or None
    when there were none left (the audience is then ready)."""
    query = select(_leads).where(
        _leads.c.site_id == audience.site_id, _leads.c.merged_into_id.is_(None)
    )
    if after is not None:
        query = query.where(_leads.c.id > after)
    rows = await conn.execute(
        query.order_by(_leads.c.id).limit(size).with_for_update(key_share=True)
    )
    profiles = [lead_row(r) for r in rows.mappings()]
    # The audience as the job knows it, held until the commit (NO KEY UPDATE: ingestion's
    # membership inserts, whose foreign key takes KEY SHARE, go on; a delete or an edit waits).
    a = _audiences
    current = await conn.scalar(
        select(a.c.version)
        .where(a.c.id == audience.id, a.c.state == "computing")
        .with_for_update(key_share=True)
    )
    if current != audience.version:
        raise _Superseded
    last = profiles[-1]["id"] if profiles else None
    moved = await memberships.update(
        conn, profiles, now, audiences=[compiled(audience)], notify=audience.job_notifies
    )
    await lead_writes.set_next_checks(conn, moved)
    values: dict[str, Any] = (
        {"computed_after": last, "job_lease_until": now + LEASE}
        if last is not None and len(profiles) == size
        else {"state": "ready", "computed_after": None, "job_lease_until": None}
    )
    done = await conn.execute(
        update(a)
        .where(a.c.id == audience.id, a.c.version == audience.version, a.c.state == "computing")
        .values(**values)
    )
    if cast(Any, done).rowcount != 1:
        raise _Superseded
    return last if "state" not in values else None


async def compute_memberships(
    context: BackgroundContext,
    memberships: Memberships,
    clock: Callable[[], datetime] = utcnow,
    stopping: Callable[[], bool] = lambda: False,
) -> int:
    """Run every audience job waiting, one after another; answers how many finished."""
    size = context.settings.scoring.rescore_batch_leads
    engine = writer(context.engine)
    finished = 0
    while not stopping():
        async with engine.begin() as conn:
            audience = await _claim(conn, clock())
        if audience is None:
            return finished
        after = audience.computed_after
        try:
            while not stopping():
                async with engine.begin() as conn:
                    after = await _batch(conn, audience, after, memberships, clock(), size)
                if after is None:
                    finished += 1
                    break
                await asyncio.sleep(0)  # other tasks (requests) run between batches
        except _Superseded:
            logger.info("audience %s changed while its members were computed", audience.id)
    return finished


async def _waiting(context: BackgroundContext, now: datetime) -> bool:
    a = _audiences
    async with context.engine.connect() as conn:
        found = await conn.scalar(
            select(a.c.id)
            .where(
                a.c.state == "computing",
                or_(a.c.job_lease_until.is_(None), a.c.job_lease_until < now),
            )
            .limit(1)
        )
    return found is not None


def _in_own_thread(context: BackgroundContext, stopping: threading.Event) -> int:
    """The jobs with an engine and an event loop of their own, in this thread: reading and
    evaluating a batch of leads (tens of milliseconds of Python) then never holds the
    server's event loop, which gets the interpreter back at every switch interval."""

    async def run() -> int:
        engine = make_engine(context.settings)
        try:
            # Nothing of the server's loop is shared: the engine, sessions and rule-set cache.
            rule_sets = RuleSetCache(context.settings.scoring.rule_set_cache_seconds)
            own = dataclasses.replace(
                context,
                engine=engine,
                sessionmaker=make_sessionmaker(writer(engine)),
                rule_sets=rule_sets,
            )
            memberships = Memberships(context.settings.webhooks, rule_sets)
            return await compute_memberships(own, memberships, stopping=stopping.is_set)
        finally:
            await engine.dispose()

    return asyncio.run(run())


async def membership_jobs_loop(context: BackgroundContext, stop: asyncio.Event) -> None:
    """Audience jobs, woken like re-scoring jobs (app.wakeups), else polled. On PostgreSQL
    they run in a thread with its own engine (see `_in_own_thread`); SQLite has one writer, so
    there they run here."""
    stopping = threading.Event()

    async def one_pass() -> bool:
        await _run_waiting(context, stop, stopping)
        return False  # every waiting job was run: sleep

    await wakeups.serve_passes(
        context.engine,
        MEMBERSHIP_JOBS,
        stop,
        one_pass,
        context.settings.scoring.rescore_poll_seconds,
    )


async def _run_waiting(
    context: BackgroundContext, stop: asyncio.Event, stopping: threading.Event
) -> None:
    """Run the waiting jobs, if any (every one: `compute_memberships` goes on to the next)."""
    if not await _waiting(context, utcnow()):
        return
    if context.engine.dialect.name == "postgresql":
        job = asyncio.ensure_future(asyncio.to_thread(_in_own_thread, context, stopping))
        waiter = asyncio.ensure_future(stop.wait())
        await asyncio.wait({job, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            stopping.set()  # the thread stops after its batch
        waiter.cancel()
        await job
    else:
        memberships = Memberships(context.settings.webhooks, context.rule_sets)
        await compute_memberships(context, memberships, stopping=stop.is_set)


LOOPS = [("audiences.membership_jobs", membership_jobs_loop)]
