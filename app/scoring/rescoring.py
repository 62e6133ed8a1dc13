"""Re-scoring in the background: scoring's loops, run by app.worker (in `leadheat serve` and
`leadheat worker`).

- re-scoring jobs: claim a pending job (or one whose worker's lease expired) and re-score the
  site's leads with the job's rule-set version (`run_job`), in batches that lock the leads as
  ingestion does, so jobs, ingestion and the refresher meet safely through the row locks.
  The replay is CPU-bound: the stale leads are split by id into one range per process
  (`SCORING__RESCORE_PROCESSES`, app.scoring.job_ranges), each re-scored by a process of a
  pool lowered in priority, writing its own batches. A batch is one short transaction that
  commits only while the job is still the claim's (`started_at`, set at each claim, is the
  owner's token), counting its leads in the job's progress; a worker shutting down gives its
  job back (pending), and the leads done so far carry the version and are skipped;
- temperature refresher: decay and ending holds change what a lead shows with time alone, but
  ingestion only stores a score when an event arrives; so every writer of a score also stores
  when the lead will next show differently (`next_check_at`), and the refresher, in one
  process per deployment (a lease), looks at the leads whose time came.

Each loop's one pass is a function of its own with the time as a parameter, so tests drive
passes directly with a controllable clock.
"""

import asyncio
import contextlib
import logging
import math
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import (
    Table,
    case,
    func,
    null,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import leases, wakeups
from app.config import Settings
from app.db import utcnow, writer
from app.domain import lead_writes
from app.domain.changes import AfterGroup, LeadChange, Memberships
from app.domain.lead_rows import LeadRow, lead_row
from app.domain.tables import Lead
from app.scoring import engine, job_ranges, rule_sets
from app.scoring.histories import scoring_histories
from app.scoring.models import RescoreJob, RuleSetVersion
from app.scoring.scorer import (
    RuleSetCache,
    facts_from_profile,
    record_next_check,
    record_result,
    replay_events,
    rule_set_for_version,
)

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
REFRESHER = "scoring.temperature_refresher"  # its lease's name


class ScoringContext(Protocol):
    """What these loops use of app.background.BackgroundContext (which carries this domain's
    rule-set cache, so it sits above app.scoring and cannot be imported here)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def engine(self) -> AsyncEngine: ...

    @property
    def rule_sets(self) -> RuleSetCache: ...

    @property
    def lead_changes(self) -> AfterGroup | None: ...

    @property
    def memberships(self) -> Memberships | None: ...


ScoringLoop = Callable[[ScoringContext, asyncio.Event], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RescoreConfig:
    batch_leads: int
    lease: timedelta
    visit_timeout: timedelta
    processes: int = 0
    pause: float = 0.0
    niceness: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> "RescoreConfig":
        return cls(
            batch_leads=settings.scoring.rescore_batch_leads,
            lease=timedelta(seconds=settings.scoring.rescore_lease_seconds),
            visit_timeout=timedelta(minutes=settings.ingestion.visit_timeout_minutes),
            processes=max(0, settings.scoring.rescore_processes),
            pause=max(0.0, settings.scoring.rescore_pause_seconds),
            niceness=settings.scoring.job_process_niceness,
        )


# --- re-scoring jobs (run by a worker, or for a small site by the publishing request) --------

_leads = cast(Table, Lead.__table__)
_jobs = cast(Table, RescoreJob.__table__)
_REPLAYED_COLUMNS = [c for c in _leads.columns if c.name != "score_state"]


def _stale_leads(site_id: uuid.UUID, version: int) -> Any:
    return (
        (_leads.c.site_id == site_id)
        & _leads.c.merged_into_id.is_(None)
        & or_(_leads.c.rule_set_version.is_(None), _leads.c.rule_set_version != version)
    )


async def claim_job(engine_: AsyncEngine, now: datetime, lease: timedelta) -> RescoreJob | None:
    """Take the oldest pending job, or a running one whose worker let its lease expire.

    `started_at` is set to the claim's time, every claim: it is the owner's token, which every
    batch's transaction checks before it commits, so a worker whose job was taken over (its
    lease expired, say a long pause) writes nothing more, even from processes still running."""
    async with engine_.begin() as conn:
        row = (
            await conn.execute(
                select(_jobs)
                .where(
                    (_jobs.c.status == "pending")
                    | ((_jobs.c.status == "running") & (_jobs.c.lease_until < now))
                )
                .order_by(_jobs.c.created_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
        ).first()
        if row is None:
            return None
        site_id, version = row.site_id, row.rule_set_version
        total = await conn.scalar(
            select(func.count())
            .select_from(_leads)
            .where(_leads.c.site_id == site_id, _leads.c.merged_into_id.is_(None))
        )
        stale = await conn.scalar(
            select(func.count()).select_from(_leads).where(_stale_leads(site_id, version))
        )
        started = now
        if row.started_at is not None and row.started_at >= now:
            started = row.started_at + timedelta(microseconds=1)  # a new owner, a new token
        values = {
            "status": "running",
            "started_at": started,
            "lease_until": now + lease,
            "total": int(total or 0),
            "processed": int(total or 0) - int(stale or 0),
        }
        await conn.execute(update(_jobs).where(_jobs.c.id == row.id).values(**values))
    return RescoreJob(**{**row._asdict(), **values})


@dataclass(frozen=True, slots=True)
class _Part:
    """One owner's range of a job's leads: ids in (after, upto], None: unbounded."""

    job_id: uuid.UUID
    token: datetime  # the job's started_at when claimed: whose the job is
    site_id: uuid.UUID
    version: int
    definition: dict[str, Any]
    after: uuid.UUID | None
    upto: uuid.UUID | None


def _ours(job_id: uuid.UUID, token: datetime) -> Any:
    """The job's row while it is running and still the claim's whose token this is."""
    return (_jobs.c.id == job_id) & (_jobs.c.status == "running") & (_jobs.c.started_at == token)


async def run_job(
    engine_: AsyncEngine,
    job: RescoreJob,
    config: RescoreConfig,
    clock: Clock,
    *,
    release_on_error: bool = False,
    lead_changes: AfterGroup | None = None,
    settings: Settings | None = None,
    stop: asyncio.Event | None = None,
) -> str:
    """Re-score the job's leads in batches while the job is ours; answer how it ended:
    "done", "stopped" (superseded by a newer version, taken over after our lease expired, or
    given back to pending because `stop` was set: the worker is shutting down), "failed" (the
    error is recorded), or "released" (back to pending for the workers, after an error).

    With `config.processes` > 0 (and `settings`, for the processes' engines) the site's stale
    leads are split by id into ranges, each re-scored by a process of a pool (`clock` and
    `lead_changes` are pickled for them); with 0, here, in the caller's event loop. Either
    way every batch is its own transaction, which commits only while the job is still ours
    (`_ours`: running, same `started_at`)."""
    stop = stop or asyncio.Event()
    token = cast(datetime, job.started_at)
    pool: ProcessPoolExecutor | None = None
    try:
        async with engine_.connect() as conn:
            definition = await conn.scalar(
                select(RuleSetVersion.definition).where(
                    RuleSetVersion.site_id == job.site_id,
                    RuleSetVersion.version == job.rule_set_version,
                )
            )
        if definition is None:
            raise LookupError(f"rule-set version {job.rule_set_version} is gone")
        # Fails here, once, for a version no longer valid.
        engine.compile_rule_set(rule_set_for_version(definition, job.rule_set_version))
        stale = _stale_leads(job.site_id, job.rule_set_version)
        processes = 0
        if settings is not None and config.processes > 0:
            left = max(0, job.total - job.processed)
            processes = min(config.processes, math.ceil(left / config.batch_leads))
        bounds = await job_ranges.lead_bounds(engine_, stale, processes) if processes else []
        parts = [
            _Part(job.id, token, job.site_id, job.rule_set_version, definition, after, upto)
            for after, upto in job_ranges.ranges(bounds)
        ]
        finished: list[bool] | None
        if processes > 0 and settings is not None:
            pool = job_ranges.process_pool(len(parts), config.niceness)
            loop = asyncio.get_running_loop()
            runs = asyncio.gather(
                *(
                    loop.run_in_executor(
                        pool, _part_in_process, settings, p, config, lead_changes, clock
                    )
                    for p in parts
                )
            )
            finished = await job_ranges.until_stopped(runs, stop)
        else:  # stops by itself after the batch in hand when `stop` is set
            finished = await _in_order(engine_, parts, config, clock, lead_changes, stop.is_set)
        if finished is None or (stop.is_set() and not all(finished)):
            # The worker is shutting down: the job goes back to pending (it is re-runnable:
            # the leads done so far carry the version and are skipped), not failed.
            await _set(engine_, job, token, status="pending", lease_until=None)
            return "stopped"
        if not all(finished):
            return "stopped"
        if await _set(
            engine_, job, token, status="done", finished_at=clock(), lease_until=None,
            processed=_jobs.c.total,
        ):  # fmt: skip
            return "done"
        return "stopped"
    except Exception as exc:
        logger.exception("re-scoring job %s (version %s) failed", job.id, job.rule_set_version)
        outcome = "released" if release_on_error else "failed"
        values: dict[str, Any] = {"lease_until": None, "error": repr(exc)[:2000]}
        if release_on_error:
            values["status"] = "pending"
        else:
            values.update(status="failed", finished_at=clock())
        await _set(engine_, job, token, **values)
        return outcome
    finally:
        if pool is not None:
            # After the job's status changed, so that ranges still running see it and stop.
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)
            # What the processes wrote for this process's loops (outbox messages, timers):
            # on PostgreSQL their NOTIFY woke them; on SQLite this is their wake-up.
            wakeups.wakeups_for(engine_).wake_all()


async def _set(engine_: AsyncEngine, job: RescoreJob, token: datetime, **values: Any) -> bool:
    """Set the job's `values` if it is still ours; answer whether it was."""
    async with writer(engine_).begin() as conn:
        done = await conn.execute(update(_jobs).where(_ours(job.id, token)).values(**values))
        if values.get("status") == "pending":  # given back: another worker takes it at once
            await wakeups.notify(conn, rule_sets.RESCORE_JOBS, others=True)
    return bool(cast(Any, done).rowcount == 1)


async def _in_order(
    engine_: AsyncEngine,
    parts: list[_Part],
    config: RescoreConfig,
    clock: Clock,
    lead_changes: AfterGroup | None,
    stopping: Callable[[], bool],
) -> list[bool]:
    finished: list[bool] = []
    for part in parts:
        finished.append(await _run_part(engine_, part, config, clock, lead_changes, stopping))
        if not finished[-1]:
            break
    return finished


def _part_in_process(
    settings: Settings,
    part: _Part,
    config: RescoreConfig,
    lead_changes: AfterGroup | None,
    clock: Clock,
) -> bool:
    """A range in a pool's process: its own event loop and its own (small) engine; the
    lead-change consumer and the clock come pickled (app.webhooks' consumer cannot be
    imported from here)."""
    return job_ranges.run_with_own_engine(
        settings,
        config.niceness,
        lambda engine_: _run_part(engine_, part, config, clock, lead_changes, pause=config.pause),
    )


async def _run_part(
    engine_: AsyncEngine,
    part: _Part,
    config: RescoreConfig,
    clock: Clock,
    lead_changes: AfterGroup | None,
    stopping: Callable[[], bool] = lambda: False,
    pause: float = 0.0,
) -> bool:
    """Re-score one range batch by batch, resting `pause` seconds between batches (a pool's
    processes: the cores are ingestion's too); answer whether it got to its end (False: the
    job stopped being ours, or `stopping` said so)."""
    compiled = engine.compile_rule_set(rule_set_for_version(part.definition, part.version))
    after = part.after
    while True:
        try:
            last = await _batch_transaction(
                engine_, part, compiled, after, config, clock, lead_changes
            )
        except _NotOurs:
            return False
        if last is None:
            return True
        after = last
        if stopping():
            return False
        if pause:
            await asyncio.sleep(pause)


class _NotOurs(Exception):
    """The job stopped being ours (superseded, taken over, given back): the batch is undone."""


async def _batch_transaction(
    engine_: AsyncEngine,
    part: _Part,
    compiled: engine.CompiledRuleSet,
    after: uuid.UUID | None,
    config: RescoreConfig,
    clock: Clock,
    lead_changes: AfterGroup | None,
) -> uuid.UUID | None:
    async with writer(engine_).begin() as conn:
        if conn.dialect.name == "postgresql":
            # A batch lost in a crash is re-done: the job is re-runnable (the leads it wrote
            # carry the version, the others are still stale), so its commits need not wait
            # for the WAL flush, which ingestion's commits would queue behind.
            await conn.execute(text("SET LOCAL synchronous_commit = off"))
        last = await _rescore_batch(conn, part, compiled, after, config, clock(), lead_changes)
        if last is None:
            return None
        if not last[1]:
            raise _NotOurs  # rolls the batch back
        return last[0]


async def notify_changes(
    conn: AsyncConnection,
    consumer: AfterGroup | None,
    profiles: list[LeadRow],
    before: dict[uuid.UUID, str],
    scores: dict[uuid.UUID, float] | None = None,
) -> None:
    """Temperature changes made here (decay, an expired hold, a new rule set) reach the same
    consumers as ingestion's (the webhook outbox), in the same transaction. With `scores`
    (a new rule set's re-scoring), a lead whose score moved is a change too, so that what
    depends on the score alone (an audience's score range) follows the new rules."""
    if consumer is None:
        return
    changes = [
        LeadChange(
            profile=p,
            previous_temperature=before[p["id"]],
            previously_identified=bool(p["identified"]),
            events=(),
        )
        for p in profiles
        if p["temperature"] != before[p["id"]]
        or (scores is not None and p["score"] != scores[p["id"]])
    ]
    if changes:
        await consumer(conn, changes)


def stale_batch_query(
    site_id: uuid.UUID, version: int, after: uuid.UUID | None, upto: uuid.UUID | None, limit: int
) -> Any:
    """The next `limit` leads of ids in (after, upto] not scored by `version`, locked in id
    order as ingestion locks them; every column but the old scoring state, the widest: the
    replay starts from scratch and replaces it."""
    query = select(*_REPLAYED_COLUMNS, null().label("score_state")).where(
        _stale_leads(site_id, version)
    )
    if after is not None:
        query = query.where(_leads.c.id > after)
    if upto is not None:
        query = query.where(_leads.c.id <= upto)
    return query.order_by(_leads.c.id).limit(limit).with_for_update(key_share=True)


async def _rescore_batch(
    conn: AsyncConnection,
    part: _Part,
    compiled: engine.CompiledRuleSet,
    after: uuid.UUID | None,
    config: RescoreConfig,
    now: datetime,
    lead_changes: AfterGroup | None = None,
) -> tuple[uuid.UUID, bool] | None:
    """Re-score the range's next batch of leads not yet scored by the job's version (locked
    in id order, as ingestion locks them; their events read in one query), then count them
    and renew the lease, if the job is still ours. Answers the last lead's id and whether the
    job was ours (if not, the caller rolls back), or None when none are left."""
    query = stale_batch_query(part.site_id, part.version, after, part.upto, config.batch_leads)
    profiles = [lead_row(row) for row in (await conn.execute(query)).mappings()]
    if not profiles:
        return None
    before = {p["id"]: p["temperature"] for p in profiles}
    scores = {p["id"]: p["score"] for p in profiles}
    ids = [p["id"] for p in profiles]
    history = await scoring_histories(conn, part.site_id, ids, config.visit_timeout)
    for profile in profiles:
        replay_events(profile, compiled, history.get(profile["id"], []), now)
    await lead_writes.write_scores(conn, profiles)
    await notify_changes(conn, lead_changes, profiles, before, scores)
    # Last, so that the job's row (which every range updates) is locked only until the commit.
    processed = _jobs.c.processed + len(profiles)
    owned = await conn.execute(
        update(_jobs)
        .where(_ours(part.job_id, part.token))
        .values(
            processed=case((processed > _jobs.c.total, _jobs.c.total), else_=processed),
            lease_until=now + config.lease,
        )
    )
    last: uuid.UUID = profiles[-1]["id"]
    return last, cast(Any, owned).rowcount == 1


# --- loops ------------------------------------------------------------------------------------


async def rescore_next_job(
    context: ScoringContext, clock: Clock = utcnow, stop: asyncio.Event | None = None
) -> str | None:
    """Claim one re-scoring job and run it; answer how it ended (None: no job was waiting)."""
    config = RescoreConfig.from_settings(context.settings)
    job = await claim_job(writer(context.engine), clock(), config.lease)
    if job is None:
        return None
    logger.info(
        "re-scoring %s leads of site %s with version %s",
        job.total,
        job.site_id,
        job.rule_set_version,
    )
    return await run_job(
        writer(context.engine),
        job,
        config,
        clock,
        lead_changes=context.lead_changes,
        settings=context.settings,
        stop=stop,
    )


async def rescore_jobs_loop(
    context: ScoringContext,
    stop: asyncio.Event,
    *,
    clock: Clock = utcnow,
    iterations: int | None = None,
) -> None:
    """Run jobs one after another; when there are none, sleep until a new one wakes the loop
    (app.wakeups) or the poll interval (a fallback) passes."""

    async def one_job() -> bool:
        return await rescore_next_job(context, clock, stop) is not None

    await wakeups.serve_passes(
        context.engine,
        rule_sets.RESCORE_JOBS,
        stop,
        one_job,
        context.settings.scoring.rescore_poll_seconds,
        iterations,
    )


async def refresh_temperatures(
    context: ScoringContext, now: datetime, *, rule_sets: RuleSetCache | None = None
) -> int:
    """Look at the leads whose next change came (`leads.next_check_at`, kept by every writer
    of a score: engine.next_change_at) and evaluate each at `now`: one that shows another
    temperature, or a score a whole point away from the stored one, is written back (its
    `updated_at` moves); the others only get their next time. Answers how many were written.

    Batches, oldest due first, each in its own transaction; leads another transaction holds
    (ingestion, a re-scoring job) are skipped: they are being scored anyway."""
    settings = context.settings.scoring
    cache = rule_sets or context.rule_sets
    later = now + timedelta(seconds=settings.refresh_interval_seconds)
    t = _leads
    written = 0
    while True:
        async with writer(context.engine).begin() as conn:
            rows = await conn.execute(
                select(t)
                .where(t.c.next_check_at <= now, t.c.merged_into_id.is_(None))
                .order_by(t.c.next_check_at)
                .limit(settings.rescore_batch_leads)
                .with_for_update(key_share=True, skip_locked=True)
            )
            profiles = [lead_row(row) for row in rows.mappings()]
            if not profiles:
                return written
            compiled = await cache.get_many(conn, {p["site_id"] for p in profiles})
            before = {p["id"]: p["temperature"] for p in profiles}
            changed: list[LeadRow] = []
            looked: list[LeadRow] = []
            for profile in profiles:
                shows_other = _reevaluate(profile, compiled[profile["site_id"]], now)
                due = profile["next_check_at"]
                if due is not None and due <= now:  # never twice in a pass
                    profile["next_check_at"] = later
                (changed if shows_other else looked).append(profile)
            if context.memberships is not None:
                # Audiences' time conditions bring next_check_at forward, before it is written.
                await context.memberships.look(conn, profiles, now)
            await lead_writes.write_scores(conn, changed)
            await lead_writes.set_next_checks(conn, looked)
            await notify_changes(conn, context.lead_changes, changed, before)
            written += len(changed)


def _reevaluate(profile: LeadRow, compiled: engine.CompiledRuleSet, now: datetime) -> bool:
    """Evaluate the lead at `now`; record the result when it shows something else (answers
    True), else only the lead's next time."""
    state = profile["score_state"]
    if not state:
        profile["next_check_at"] = None
        return False
    if profile["rule_set_version"] != compiled.version:
        # Scored by another version: the re-scoring job (or ingestion) replays it and sets its
        # next time; until then look again each pass.
        profile["next_check_at"] = now
        return False
    result = engine.evaluate(compiled, state, facts_from_profile(profile), now, explain=False)
    if (
        result.temperature != profile["temperature"]
        or abs(result.score - profile["score"]) >= engine.WHOLE_POINT
    ):
        record_result(profile, result, now, compiled)
        return True
    record_next_check(profile, compiled, now)
    return False


async def temperature_refresher_loop(
    context: ScoringContext,
    stop: asyncio.Event,
    *,
    clock: Clock = utcnow,
    iterations: int | None = None,
) -> None:
    """`refresh_temperatures` every refresh interval, in the one process of the deployment
    that holds the refresher's lease (every `serve` and `worker` process runs this loop)."""
    settings = context.settings.scoring
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    length = timedelta(seconds=settings.refresh_lease_seconds)
    done = 0
    try:
        while not stop.is_set() and (iterations is None or done < iterations):
            if iterations is None:
                # The first pass an interval after start, not at once: a short-lived process (a
                # test's app) never rewrites scores under the requests it serves, and a replica
                # started by a deploy leaves the pass to the lease's holder meanwhile.
                await wakeups.sleep(stop, settings.refresh_interval_seconds)
                if stop.is_set():
                    break
            done += 1
            if await leases.take(writer(context.engine), REFRESHER, holder, clock(), length):
                written = await refresh_temperatures(context, clock())
                if written:
                    logger.info("temperature refresher updated %d leads", written)
    finally:
        with contextlib.suppress(Exception):  # the lease expires anyway
            await leases.give_up(writer(context.engine), REFRESHER, holder)


LOOPS: list[tuple[str, ScoringLoop]] = [
    ("scoring.rescore_jobs", rescore_jobs_loop),
    ("scoring.temperature_refresher", temperature_refresher_loop),
]
