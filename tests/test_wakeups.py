"""Wake-ups (app.wakeups): with idle polls far longer than the tests wait, a job made by
another engine (another process's, PostgreSQL: NOTIFY; SQLite: the same engine, in-process)
is started at once, also after the listening connection was killed; and timers fire when
they are due, not at the next poll (retries: tests/webhooks/test_delivery.py)."""

import asyncio
from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy import select, update

from app import wakeups
from app.background import BackgroundContext
from app.config import ScoringSettings, Settings
from app.db import make_engine, make_sessionmaker, utcnow, writer
from app.scoring import preview_jobs
from app.scoring.models import PreviewJob
from app.scoring.scorer import RuleSetCache
from app.webhooks import outbox
from app.webhooks.models import LeadTimer
from app.webhooks.timers import RUN_LIMIT, TimerService
from tests.conftest import _asyncpg_dsn, make_settings
from tests.factories import create_site, send, track
from tests.helpers import eventually
from tests.rules.helpers import views_rule_set
from tests.webhooks.conftest import webhook_settings

LONG_POLL = 60.0  # far beyond every wait below: only a wake-up (or a due time) can be in time
LISTENING = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"
)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(
        database_url,
        scoring=ScoringSettings(
            rule_set_cache_seconds=0, preview_processes=0, rescore_poll_seconds=LONG_POLL
        ),
        webhooks=webhook_settings(poll_seconds=LONG_POLL),
        run_background=False,
    )


@pytest.fixture
async def worker_engine(settings):
    """The worker's engine: a process of its own, as far as wake-ups go (its own pool)."""
    engine = make_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
def sleeping(monkeypatch):
    """Set each time a loop starts its sleep between polls (observed, not changed)."""
    started = asyncio.Event()
    original = wakeups.wait

    async def wait(stop, wake, timeout):
        started.set()
        await original(stop, wake, timeout)

    monkeypatch.setattr(wakeups, "wait", wait)
    return started


async def listening_pids(database_url) -> list[int]:
    conn = await asyncpg.connect(_asyncpg_dsn(database_url))
    try:
        return [r["pid"] for r in await conn.fetch(LISTENING)]
    finally:
        await conn.close()


async def start_listening(engine, stop, database_url, but=()):
    """The engine's listener, once its connection listens (not one of `but`'s)."""
    task = asyncio.create_task(wakeups.listen(engine, stop))
    if engine.dialect.name == "postgresql":

        async def listening():
            """the listener's LISTEN is in pg_stat_activity"""
            return [p for p in await listening_pids(database_url) if p not in but]

        await eventually(listening, timeout=10)
    return task


async def preview_job_started(db_engine, settings, worker_engine, session, sleeping):
    """Make a job while the worker's loop sleeps a long poll; answer once it started."""
    stop = asyncio.Event()
    context = BackgroundContext(
        settings, worker_engine, make_sessionmaker(writer(worker_engine)), RuleSetCache(0)
    )
    sleeping.clear()
    loop = asyncio.create_task(preview_jobs.preview_jobs_loop(context, stop))
    try:
        await asyncio.wait_for(sleeping.wait(), timeout=10)  # its first look found nothing
        site = await create_site(session)
        # Another process's engine on PostgreSQL; on SQLite (one process) the worker's own.
        maker = worker_engine if worker_engine.dialect.name == "sqlite" else db_engine
        async with make_sessionmaker(writer(maker))() as other:
            job = await preview_jobs.create_job(
                other, site.site.id, views_rule_set(points=10, warm=30, hot=60), at=utcnow(),
                limit=5, now=utcnow(),
                keep=timedelta(hours=1),
            )  # fmt: skip
            await other.commit()

        async def started():
            """the job left pending"""
            status = await session.scalar(select(PreviewJob.status).where(PreviewJob.id == job.id))
            return status if status != "pending" else None

        return await eventually(started, timeout=10)
    finally:
        stop.set()
        await loop


async def test_a_job_made_elsewhere_starts_without_waiting_for_the_poll(
    database_url, db_engine, settings, worker_engine, session, sleeping
):
    stop = asyncio.Event()
    listener = await start_listening(worker_engine, stop, database_url)
    try:
        assert await preview_job_started(db_engine, settings, worker_engine, session, sleeping)
    finally:
        stop.set()
        await listener


async def test_the_listener_reconnects_after_its_connection_is_killed(
    database_url, db_engine, settings, worker_engine, session, sleeping
):
    if worker_engine.dialect.name != "postgresql":
        pytest.skip("SQLite: one process, no listener")
    stop = asyncio.Event()
    listener = await start_listening(worker_engine, stop, database_url)
    try:
        killed = await listening_pids(database_url)
        conn = await asyncpg.connect(_asyncpg_dsn(database_url))
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid", killed
            )
        finally:
            await conn.close()

        async def listening_again():
            """a new LISTEN connection"""
            return [p for p in await listening_pids(database_url) if p not in killed]

        await eventually(listening_again, timeout=10)
        assert await preview_job_started(db_engine, settings, worker_engine, session, sleeping)
    finally:
        stop.set()
        await listener


async def test_timers_fire_when_due_with_a_long_poll(client, db_engine, settings, session, site):
    await send(client, site, track("v", "Contact Requested"))
    first = await session.scalar(select(LeadTimer).order_by(LeadTimer.due_at).limit(1))
    assert first is not None
    # Its step due in two seconds (the ladder's are minutes): not due when the loop starts.
    await session.execute(
        update(LeadTimer)
        .where(LeadTimer.id == first.id)
        .values(due_at=utcnow() + timedelta(seconds=2))
    )
    stop = asyncio.Event()
    service = TimerService(db_engine, settings.webhooks)
    loop = asyncio.create_task(service.run(stop, outbox.notifier_for(db_engine)))
    try:

        async def fired():
            """the first timer fired"""
            timer = await session.get(LeadTimer, first.id, populate_existing=True)
            return timer if timer is not None and timer.status != "pending" else None

        timer = await eventually(fired, timeout=10)
    finally:
        stop.set()
        await loop
    assert timer.status == "fired"
    assert timer.fired_at >= timer.due_at


async def test_timers_coming_due_one_after_another_are_fired_together(
    client, db_engine, settings, session, site
):
    """Twelve timers due 0.1 s apart: a pass for each (and an empty one after it) was ~24
    passes; now a pass a second at most takes all that are due, each fired about a second
    late at worst."""
    for visitor in ("a", "b", "c"):  # each contact request: its ladder's four steps
        await send(client, site, track(visitor, "Contact Requested"))
    timers = (await session.scalars(select(LeadTimer).order_by(LeadTimer.id))).all()
    assert len(timers) == 12
    start = utcnow() + timedelta(seconds=0.5)
    for i, timer in enumerate(timers):
        timer.due_at = start + timedelta(seconds=0.1 * i)
    await session.commit()
    stop = asyncio.Event()
    service = TimerService(db_engine, settings.webhooks)
    passes = 0
    run_once = service.run_once

    async def counted(limit: int = RUN_LIMIT) -> int:
        nonlocal passes
        passes += 1
        return await run_once(limit)

    service.run_once = counted  # type: ignore[method-assign]
    loop = asyncio.create_task(service.run(stop, outbox.notifier_for(db_engine)))
    try:

        async def all_done():
            """every timer fired (or found no longer needed)"""
            rows = (
                await session.scalars(select(LeadTimer).execution_options(populate_existing=True))
            ).all()
            return rows if all(t.status != "pending" for t in rows) else None

        done = await eventually(all_done, timeout=15)
    finally:
        stop.set()
        await loop
    assert passes <= 4  # at 0 s (nothing due), then a second apart: 1, 2 (and 3 if slow)
    fired = [t for t in done if t.status == "fired"]
    assert fired
    # A second late at most, and what a busy test machine adds.
    assert max((t.fired_at - t.due_at).total_seconds() for t in fired) < 3


NAME = "tests.passes"


async def test_serve_passes_goes_on_at_once_while_passes_find_work_then_sleeps_until_woken(
    db_engine,
):
    """Three passes that find work follow each other with no wake-up (the poll is a minute
    away); the fourth finds none and the loop sleeps; a wake-up brings a fifth."""
    stop = asyncio.Event()
    passes = 0

    async def one_pass() -> bool:
        nonlocal passes
        passes += 1
        return passes <= 3

    loop = asyncio.create_task(wakeups.serve_passes(db_engine, NAME, stop, one_pass, LONG_POLL))
    try:
        await eventually(lambda: _at_least(passes, 4))
        await asyncio.sleep(0.3)  # asleep now: nothing calls it again
        assert passes == 4
        wakeups.wakeups_for(db_engine).wake(NAME)
        await eventually(lambda: _at_least(passes, 5))
        await asyncio.sleep(0.3)
        assert passes == 5
    finally:
        stop.set()
        await asyncio.wait_for(loop, 5)  # a stop ends the sleep, not the poll


async def test_a_wake_up_during_a_pass_brings_another_pass(db_engine):
    """Work that appears while a pass runs (after it looked) is not left to the poll."""
    stop = asyncio.Event()
    passes = 0

    async def one_pass() -> bool:
        nonlocal passes
        passes += 1
        if passes == 1:
            wakeups.wakeups_for(db_engine).wake(NAME)
            await asyncio.sleep(0.05)  # the wake-up lands while the pass is still running
        return False

    loop = asyncio.create_task(wakeups.serve_passes(db_engine, NAME, stop, one_pass, LONG_POLL))
    try:
        await eventually(lambda: _at_least(passes, 2))
        await asyncio.sleep(0.3)
        assert passes == 2
    finally:
        stop.set()
        await asyncio.wait_for(loop, 5)


async def test_serve_passes_with_iterations_runs_that_many_and_never_sleeps(db_engine):
    """Tests drive a loop's passes: `iterations` passes, returning at once though none found
    work (a sleep would be the minute's poll)."""
    passes = 0

    async def one_pass() -> bool:
        nonlocal passes
        passes += 1
        return False

    await asyncio.wait_for(
        wakeups.serve_passes(db_engine, NAME, asyncio.Event(), one_pass, LONG_POLL, 3), 5
    )
    assert passes == 3


async def _at_least(value: int, wanted: int) -> bool:
    return value >= wanted
