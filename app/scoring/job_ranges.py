"""What preview jobs and re-scoring jobs share to run over a process pool: a site's leads split
by id into ranges of about equal size (`lead_bounds`), one range per process; the pool itself,
its processes lowered in priority (`process_pool`); and waiting for the ranges unless the
worker is asked to stop (`until_stopped`)."""

import asyncio
import contextlib
import gc
import math
import multiprocessing
import multiprocessing.forkserver
import os
import threading
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar, cast

from sqlalchemy import Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app import metrics
from app.config import Settings
from app.db import make_engine
from app.domain.tables import Lead

_leads = cast(Table, Lead.__table__)


async def lead_bounds(engine_: AsyncEngine, where: Any, parts: int) -> list[uuid.UUID]:
    """Lead ids splitting the leads matching `where` into `parts` ranges of about equal size:
    range k holds the ids in (bounds[k-1], bounds[k]] (unbounded at both ends)."""
    if parts < 2:
        return []
    async with engine_.connect() as conn:
        total = int(await conn.scalar(select(func.count()).select_from(_leads).where(where)) or 0)
        size = math.ceil(total / parts)
        if size == 0:
            return []
        numbered = (
            select(_leads.c.id, func.row_number().over(order_by=_leads.c.id).label("n"))
            .where(where)
            .subquery()
        )
        rows = await conn.execute(
            select(numbered.c.id)
            .where(numbered.c.n.in_([size * k for k in range(1, parts)]))
            .order_by(numbered.c.n)
        )
        return [row.id for row in rows]


def ranges(bounds: list[uuid.UUID]) -> list[tuple[uuid.UUID | None, uuid.UUID | None]]:
    """(after, upto] pairs of the ranges `bounds` make; None: unbounded."""
    edges: list[uuid.UUID | None] = [None, *bounds, None]
    return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


def _lower_priority(niceness: int, pid: int = 0) -> None:
    # The pool's replays are CPU-bound and can wait; ingestion (the API, same cores) cannot.
    # Not SCHED_IDLE: a process starved while it holds a batch's row locks would hold up
    # ingestion waiting for those leads (and the job's time would depend on everyone's load).
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, niceness)


def _start_job_process(niceness: int) -> None:
    _lower_priority(niceness)
    metrics.drop_own_files()  # it counts nothing: no files for every scrape to read
    # A job allocates millions of short-lived rows and scoring states, without cycles: with the
    # collector's default thresholds its collections cost as much as the reading itself. Rarer
    # collections, and what the process imported kept out of them.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


_START = threading.Lock()
# What a job's process runs (the parts' functions): imported once, by the fork server.
_PRELOAD = ["app.scoring.preview_jobs", "app.scoring.rescoring"]


def _context(preload: Sequence[str] = ()) -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([*_PRELOAD, *preload])
    return context


def start_forkserver(preload: Sequence[str] = ()) -> None:
    """Start the fork server the jobs' processes come from, having imported their code and
    `preload` (what the re-scoring's pickled lead-change consumers unpickle into); it blocks
    while the server starts (run it in a thread). The worker starts it when it starts; else
    the first job's pool does (once: it serves the process from then on)."""
    with _START:
        _context(preload)
        # Started without the metrics' directory: neither it nor the processes forked from it
        # count anything, so they make no metric files for every scrape to read.
        directory = os.environ.pop(metrics.MULTIPROC_DIR, None)
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            if directory is not None:
                os.environ[metrics.MULTIPROC_DIR] = directory


def process_pool(processes: int, niceness: int) -> ProcessPoolExecutor:
    """A pool for one job: not forked from the worker (it runs an event loop and threads) but
    from a fork server that imported the job's code once, so that a process starts in tens of
    milliseconds, not a second of imports; its processes `niceness` lower in priority than the
    worker and collecting garbage rarely."""
    start_forkserver()  # at once if it runs
    return ProcessPoolExecutor(
        processes,
        mp_context=_context(),
        initializer=_start_job_process,
        initargs=(niceness,),
    )


_LOCAL = (None, "", "localhost", "127.0.0.1", "::1")


async def lower_backend_priority(engine_: AsyncEngine, niceness: int) -> None:
    """Best effort: a job process's PostgreSQL backend gets the process's lower priority too,
    if the database runs on this host and this process may renice it (root, CAP_SYS_NICE);
    otherwise nothing changes. Called once a process's engine is made (one connection)."""
    if engine_.dialect.name != "postgresql" or niceness <= 0 or engine_.url.host not in _LOCAL:
        return
    async with engine_.connect() as conn:
        pid = await conn.scalar(text("SELECT pg_backend_pid()"))
    _lower_priority(niceness, int(pid))


T = TypeVar("T")


def run_with_own_engine(
    settings: Settings, niceness: int, work: Callable[[AsyncEngine], Awaitable[T]]
) -> T:
    """In a pool's process: `work` on an event loop and an engine of the process's own (one
    connection), its PostgreSQL backend lowered in priority like the process."""
    settings = settings.model_copy(update={"database_pool_size": 1})

    async def main() -> T:
        engine_ = make_engine(settings)
        try:
            await lower_backend_priority(engine_, niceness)
            return await work(engine_)
        finally:
            await engine_.dispose()

    return asyncio.run(main())


async def until_stopped(runs: Any, stop: asyncio.Event) -> Any:
    """What `runs` answers; None if `stop` is set first (it is left to finish by itself)."""
    run = asyncio.ensure_future(runs)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({run, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if run.done():
        return run.result()
    run.add_done_callback(lambda f: f.cancelled() or f.exception())  # nobody waits for it
    return None
