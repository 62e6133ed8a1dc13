"""Rule-set previews as background jobs: started by the API, run by a worker loop (app.worker,
in `leadheat serve` and `leadheat worker`), followed and cancelled through the API.

- A job (`preview_jobs`) stores the draft, the moment leads are evaluated at and how many
  changed leads to list; creating one deletes jobs finished more than
  `SCORING__PREVIEW_JOB_KEEP_HOURS` ago (of every site: the table stays small).
- A worker claims it like a re-scoring job (`FOR UPDATE SKIP LOCKED`, a lease) and counts an
  attempt; a job whose worker stopped renewing the lease is claimed again and starts over
  (a preview writes nothing, so starting over is safe). The active rule set is read then.
- The replay is CPU-bound Python: the site's leads are split by id into one range per process
  (`SCORING__PREVIEW_PROCESSES`, default one per core) and each range is previewed in a
  process of its own (a pool made for the job, lowered in priority: app.scoring.job_ranges),
  with its own database engine, so the worker's event loop (the API's, in `serve`) only
  waits. Tallies of consecutive ranges merge into the answer `rule_sets.preview` gives.
- After each batch of leads a range adds to `processed` and renews the lease, in a statement
  that only matches while the job is still running, not cancelled and still on this attempt:
  when it matches nothing (cancelled, taken over, failed elsewhere) the range stops there.
"""

import asyncio
import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app import wakeups
from app.config import Settings
from app.db import utcnow, writer
from app.domain.tables import Lead
from app.errors import Conflict
from app.scoring import job_ranges, rule_sets, warnings
from app.scoring.models import PreviewJob
from app.scoring.rescoring import ScoringContext, ScoringLoop

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
FINISHED = ("done", "failed", "cancelled")
PREVIEW_JOBS = "scoring.preview_jobs"  # the loop's wake-up (app.wakeups)

_jobs = cast(Table, PreviewJob.__table__)
_leads = cast(Table, Lead.__table__)


class JobFinished(Conflict):
    code = "job_finished"


@dataclass(frozen=True, slots=True)
class PreviewJobConfig:
    batch_leads: int
    lease: timedelta
    visit_timeout: timedelta
    processes: int
    keep: timedelta
    niceness: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> "PreviewJobConfig":
        return cls(
            batch_leads=rule_sets.PREVIEW_LEADS_PER_QUERY,
            lease=timedelta(seconds=settings.scoring.rescore_lease_seconds),
            visit_timeout=timedelta(minutes=settings.ingestion.visit_timeout_minutes),
            processes=max(0, settings.scoring.preview_processes),
            keep=timedelta(hours=settings.scoring.preview_job_keep_hours),
            niceness=settings.scoring.job_process_niceness,
        )


# --- the API's side ---------------------------------------------------------------------------


async def create_job(
    session: AsyncSession,
    site_id: uuid.UUID,
    document: Mapping[str, Any],
    *,
    at: datetime,
    limit: int,
    now: datetime,
    keep: timedelta,
) -> PreviewJob:
    """Validate the draft (`InvalidRuleSet`, as publishing) and enqueue a job for it; delete
    the jobs finished before `now - keep`."""
    conn = await session.connection()
    version, _ = await rule_sets.active_definition(conn, site_id)
    definition, _ = rule_sets.validate_draft(document, version + 1)
    await session.execute(
        delete(PreviewJob).where(
            PreviewJob.status.in_(FINISHED), PreviewJob.finished_at < now - keep
        )
    )
    job = PreviewJob(
        site_id=site_id,
        definition=definition,
        at=at,
        limit=limit,
        total=await _live_leads(conn, site_id),
        created_at=now,
    )
    session.add(job)
    await session.flush()
    await wakeups.notify(conn, PREVIEW_JOBS, others=True)  # started at once (app.wakeups)
    return job


async def count_live_leads(session: AsyncSession, site_id: uuid.UUID) -> int:
    return await _live_leads(await session.connection(), site_id)


async def get_job(
    session: AsyncSession, site_id: uuid.UUID, job_id: uuid.UUID
) -> PreviewJob | None:
    return await session.scalar(
        select(PreviewJob).where(PreviewJob.id == job_id, PreviewJob.site_id == site_id)
    )


async def cancel_job(session: AsyncSession, job: PreviewJob, now: datetime) -> None:
    """A pending job is cancelled at once; a running one is asked to stop (its worker stops
    after the batch in hand and marks it cancelled). A finished job cannot be cancelled
    (`JobFinished`), except that cancelling a cancelled one again changes nothing."""
    if job.status == "cancelled":
        return
    if job.status in FINISHED:
        raise JobFinished(f"This preview job is already {job.status}.")
    values: dict[str, Any] = {"cancel_requested": True}
    if job.status == "pending":
        values.update(status="cancelled", finished_at=now)
    # Only while the status read is still the job's: a worker may have claimed it meanwhile.
    updated = await session.execute(
        update(PreviewJob)
        .where(PreviewJob.id == job.id, PreviewJob.status == job.status)
        .values(**values)
    )
    if cast(Any, updated).rowcount != 1:
        await session.refresh(job)
        await cancel_job(session, job, now)
        return
    await session.refresh(job)


def job_view(job: PreviewJob) -> dict[str, Any]:
    percent = 100.0 if not job.total else min(100.0, round(100.0 * job.processed / job.total, 1))
    return {
        "id": str(job.id),
        "status": job.status,
        "at": job.at,
        "limit": job.limit,
        "processed": job.processed,
        "total": job.total,
        "percent": percent,
        "cancel_requested": job.cancel_requested,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "error": job.error,
        "result": job.result if job.status == "done" else None,
        "url": f"/v1/rules/preview/jobs/{job.id}",
    }


# --- the worker's side ------------------------------------------------------------------------


async def _live_leads(conn: Any, site_id: uuid.UUID) -> int:
    count = await conn.scalar(
        select(func.count()).select_from(_leads).where(rule_sets.live_leads(site_id))
    )
    return int(count or 0)


async def claim_job(engine_: AsyncEngine, now: datetime, lease: timedelta) -> PreviewJob | None:
    """Take the oldest pending job, or a running one whose worker let its lease expire (it
    starts over: a new attempt, nothing processed)."""
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
        values: dict[str, Any]
        if row.cancel_requested:  # its worker died after the cancel was asked for
            values = {"status": "cancelled", "finished_at": now, "lease_until": None}
        else:
            values = {
                "status": "running",
                "attempts": row.attempts + 1,
                "started_at": now,
                "lease_until": now + lease,
                "total": await _live_leads(conn, row.site_id),
                "processed": 0,
            }
        await conn.execute(update(_jobs).where(_jobs.c.id == row.id).values(**values))
    if values["status"] == "cancelled":
        return None
    return PreviewJob(**{**row._asdict(), **values})


@dataclass(frozen=True, slots=True)
class _Part:
    """One range of a job's leads: ids in (after, upto], None: unbounded."""

    job_id: uuid.UUID
    attempt: int
    site_id: uuid.UUID
    draft: dict[str, Any]
    active_version: int
    active: dict[str, Any] | None
    at: datetime
    limit: int
    after: uuid.UUID | None
    upto: uuid.UUID | None


async def _run_part(
    engine_: AsyncEngine,
    part: _Part,
    config: PreviewJobConfig,
    clock: Clock,
    stopping: Callable[[], bool] = lambda: False,
    on_batch: Callable[[], Awaitable[None]] | None = None,
) -> rule_sets.PreviewTally | None:
    """Preview one range batch by batch; None: the job stopped being this attempt's to run
    (cancelled, taken over, failed in another range) or `stopping` said so."""
    sets = rule_sets.compile_preview_sets(part.draft, part.active_version, part.active)
    tally = rule_sets.PreviewTally(limit=part.limit)
    after = part.after
    while True:
        async with engine_.connect() as conn:
            last, count = await rule_sets.preview_batch(
                conn,
                part.site_id,
                sets,
                tally,
                after=after,
                upto=part.upto,
                batch_leads=config.batch_leads,
                now=part.at,
                visit_timeout=config.visit_timeout,
            )
        if last is None:
            return tally
        after = last
        processed = _jobs.c.processed + count
        async with writer(engine_).begin() as conn:
            owned = await conn.execute(
                update(_jobs)
                .where(_ours(part))
                .values(
                    processed=case((processed > _jobs.c.total, _jobs.c.total), else_=processed),
                    lease_until=clock() + config.lease,
                )
            )
        if cast(Any, owned).rowcount != 1 or stopping():
            return None
        if on_batch is not None:
            await on_batch()


def _ours(part: _Part) -> Any:
    return (
        (_jobs.c.id == part.job_id)
        & (_jobs.c.attempts == part.attempt)
        & (_jobs.c.status == "running")
        & _jobs.c.cancel_requested.is_(False)
    )


def _part_in_process(
    settings: Settings, part: _Part, config: PreviewJobConfig
) -> rule_sets.PreviewTally | None:
    """A range in a pool's process: its own event loop and its own (small) engine."""
    return job_ranges.run_with_own_engine(
        settings, config.niceness, lambda engine_: _run_part(engine_, part, config, utcnow)
    )


async def run_job(
    engine_: AsyncEngine,
    job: PreviewJob,
    config: PreviewJobConfig,
    clock: Clock,
    *,
    settings: Settings | None = None,
    stop: asyncio.Event | None = None,
    on_batch: Callable[[], Awaitable[None]] | None = None,
) -> str:
    """Run a claimed job; answer how it ended: "done", "cancelled", "stopped" (taken over, or
    released for another worker because `stop` was set) or "failed" (the error recorded).

    With `config.processes` > 0 (and `settings`, for the processes' engines) the ranges run in
    a pool of processes; with 0, here, one range after another between awaits, calling
    `on_batch` (an observer: tests) after each batch's progress is committed."""
    stop = stop or asyncio.Event()
    attempt = job.attempts
    pool: ProcessPoolExecutor | None = None
    try:
        async with engine_.connect() as conn:
            version, definition = await rule_sets.active_definition(conn, job.site_id)
        # Fails here, once, for a draft no longer valid (a rule kind since removed, say).
        rule_sets.compile_preview_sets(job.definition, version, definition)
        processes = min(config.processes, math.ceil(job.total / config.batch_leads))
        where = rule_sets.live_leads(job.site_id)
        bounds = await job_ranges.lead_bounds(engine_, where, processes) if settings else []
        parts = [
            _Part(
                job_id=job.id,
                attempt=attempt,
                site_id=job.site_id,
                draft=job.definition,
                active_version=version,
                active=definition,
                at=job.at,
                limit=job.limit,
                after=after,
                upto=upto,
            )
            for after, upto in job_ranges.ranges(bounds)
        ]
        if processes > 0 and settings is not None:
            pool = job_ranges.process_pool(len(parts), config.niceness)
            loop = asyncio.get_running_loop()
            runs: Awaitable[list[rule_sets.PreviewTally | None]] = asyncio.gather(
                *(loop.run_in_executor(pool, _part_in_process, settings, p, config) for p in parts)
            )
        else:
            runs = _in_order(engine_, parts, config, clock, stop.is_set, on_batch)
        tallies = await job_ranges.until_stopped(runs, stop)
        if tallies is None:  # the worker is shutting down: another one takes the job
            await _finish(engine_, job.id, attempt, status="pending", lease_until=None)
            return "stopped"
        if any(t is None for t in tallies):
            return await _stopped(engine_, job.id, attempt, clock())
        whole = cast(rule_sets.PreviewTally, tallies[0])
        for tally in tallies[1:]:
            whole.extend(cast(rule_sets.PreviewTally, tally))
        answer = whole.answer(version, job.at)
        answer["evaluated_at"] = job.at.isoformat()
        _, draft = rule_sets.validate_draft(job.definition, version + 1)
        async with engine_.connect() as conn:
            answer["warnings"] = await warnings.warnings_for(conn, job.site_id, draft, clock())
        if await _finish(
            engine_, job.id, attempt, status="done", result=answer, processed=whole.leads,
            finished_at=clock(), lease_until=None,
        ):  # fmt: skip
            return "done"
        return await _stopped(engine_, job.id, attempt, clock())
    except Exception as exc:
        logger.exception("preview job %s failed", job.id)
        await _finish(
            engine_, job.id, attempt, status="failed", error=repr(exc)[:2000],
            finished_at=clock(), lease_until=None, cancelled_too=True,
        )  # fmt: skip
        return "failed"
    finally:
        if pool is not None:
            # After the job's status changed, so that ranges still running see it and stop.
            await asyncio.to_thread(pool.shutdown, True, cancel_futures=True)


async def _in_order(
    engine_: AsyncEngine,
    parts: list[_Part],
    config: PreviewJobConfig,
    clock: Clock,
    stopping: Callable[[], bool],
    on_batch: Callable[[], Awaitable[None]] | None,
) -> list[rule_sets.PreviewTally | None]:
    tallies: list[rule_sets.PreviewTally | None] = []
    for part in parts:
        tallies.append(await _run_part(engine_, part, config, clock, stopping, on_batch))
        if tallies[-1] is None:
            break
    return tallies


async def _finish(
    engine_: AsyncEngine,
    job_id: uuid.UUID,
    attempt: int,
    *,
    cancelled_too: bool = False,
    **values: Any,
) -> bool:
    """Set the job's `values` if it is still this attempt's, running (and not cancelled,
    unless `cancelled_too`); answer whether it was."""
    condition = (_jobs.c.id == job_id) & (_jobs.c.attempts == attempt)
    condition &= _jobs.c.status == "running"
    if not cancelled_too:
        condition &= _jobs.c.cancel_requested.is_(False)
    async with writer(engine_).begin() as conn:
        done = await conn.execute(update(_jobs).where(condition).values(**values))
        if values.get("status") == "pending":  # given back: another worker takes it at once
            await wakeups.notify(conn, PREVIEW_JOBS, others=True)
    return bool(cast(Any, done).rowcount == 1)


async def _stopped(engine_: AsyncEngine, job_id: uuid.UUID, attempt: int, now: datetime) -> str:
    """A run that found the job no longer its own: cancelled (it marks it so), or not ours."""
    async with writer(engine_).begin() as conn:
        cancelled = await conn.execute(
            update(_jobs)
            .where(
                (_jobs.c.id == job_id)
                & (_jobs.c.attempts == attempt)
                & (_jobs.c.status == "running")
                & _jobs.c.cancel_requested.is_(True)
            )
            .values(status="cancelled", finished_at=now, lease_until=None)
        )
    return "cancelled" if cast(Any, cancelled).rowcount == 1 else "stopped"


# --- the loop ---------------------------------------------------------------------------------


async def run_next_job(
    context: ScoringContext, clock: Clock = utcnow, stop: asyncio.Event | None = None
) -> str | None:
    """Claim one preview job and run it; answer how it ended (None: no job was waiting)."""
    config = PreviewJobConfig.from_settings(context.settings)
    job = await claim_job(writer(context.engine), clock(), config.lease)
    if job is None:
        return None
    logger.info("previewing a draft over %s leads of site %s", job.total, job.site_id)
    return await run_job(
        writer(context.engine), job, config, clock, settings=context.settings, stop=stop
    )


async def preview_jobs_loop(
    context: ScoringContext,
    stop: asyncio.Event,
    *,
    clock: Clock = utcnow,
    iterations: int | None = None,
) -> None:
    """Run jobs one after another; when there are none, sleep until a new one wakes the loop
    (app.wakeups) or the poll interval (a fallback) passes."""

    async def one_job() -> bool:
        return await run_next_job(context, clock, stop) is not None

    await wakeups.serve_passes(
        context.engine,
        PREVIEW_JOBS,
        stop,
        one_job,
        context.settings.scoring.rescore_poll_seconds,
        iterations,
    )


LOOPS: list[tuple[str, ScoringLoop]] = [("scoring.preview_jobs", preview_jobs_loop)]
