"""Group commit: concurrent requests' events share one transaction and one fsync.

A request hands its events to the pipeline and waits; a flusher takes everything queued so
far, stores it in one transaction, commits, and only then answers every waiting request. At
low load a group is one request (no added latency); under load, groups grow by themselves
while the previous commit is in flight. An answered request's events are durable.
"""

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import timedelta

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.config import IngestionSettings
from app.db import database_unavailable, sqlstate
from app.domain.changes import AfterGroup, Scorer
from app.ingestion.bulk import group_transaction, prepare_flusher
from app.ingestion.repairs import mark_for_repair
from app.ingestion.store import BOT, DUPLICATE, SUPPRESSED, RetryGroup, Submission, store_group
from app.metrics import GROUP_RETRIES, count_group

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
# PostgreSQL's deadlock_detected and serialization_failure: safe to retry the whole group.
RETRYABLE_SQLSTATES = {"40P01", "40001"}


class StorageUnavailable(Exception):
    """The database could not store a submission (down, unreachable, or shutting down)."""


class IngestPipeline:
    def __init__(
        self,
        engine: AsyncEngine,
        settings: IngestionSettings,
        scorer: Scorer | None = None,
        after_group: Sequence[AfterGroup] = (),
        after_commit: Sequence[Callable[[AsyncConnection], None]] = (),
    ) -> None:
        self._engine = engine
        # Called with the connection once a group has committed (wakes the webhook loops).
        self._after_commit = tuple(after_commit)
        self._settings = settings
        self._scorer = scorer
        self._after_group = tuple(after_group)
        self._visit_timeout = timedelta(minutes=settings.visit_timeout_minutes)
        self._queue: deque[tuple[Submission, asyncio.Future[None]]] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        # Counters for operators and benchmarks: how well commits are being grouped.
        # unfolded_submissions: stored without the downstream work after it failed (logged);
        # leads_marked_for_repair: leads left for the repair job (app.ingestion.repair_worker);
        # suppressed_events: dropped for carrying an erased person's identifier;
        # consent_refused_events: dropped at parsing, their context refusing consent.
        self.stats = dict.fromkeys(
            (
                "groups",
                "submissions",
                "events",
                "retries",
                "unfolded_submissions",
                "leads_marked_for_repair",
                "suppressed_events",
                "consent_refused_events",
            ),
            0,
        )
        # SQLite has one writer: more flushers would only queue on its lock.
        self._flushers = 1 if engine.dialect.name == "sqlite" else settings.flushers
        # Each flusher keeps its connection (no pool checkout and liveness ping per group); a
        # connection that fails is dropped and the group retried on a new one.
        self._conns: list[AsyncConnection | None] = [None] * self._flushers

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._flush_loop(i), name=f"ingest-flusher-{i}")
            for i in range(self._flushers)
        ]

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        self._closing = True
        self._wake.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for slot in range(self._flushers):
            await self._drop(slot)  # not back to the pool: its session settings are ours

    async def submit(self, submission: Submission) -> Submission:
        if self._closing:
            raise StorageUnavailable("the ingestion pipeline is shutting down")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((submission, future))
        self._wake.set()
        await asyncio.shield(future)
        return submission

    def _take(self) -> list[tuple[Submission, asyncio.Future[None]]]:
        group: list[tuple[Submission, asyncio.Future[None]]] = []
        events = 0
        limit = self._settings.group_commit_max_events
        while self._queue and (not group or events + len(self._queue[0][0].events) <= limit):
            item = self._queue.popleft()
            group.append(item)
            events += len(item[0].events)
        return group

    async def _flush_loop(self, slot: int) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            group = self._take()
            try:
                await self._store_with_retries([s for s, _ in group], slot)
            except StorageUnavailable as exc:
                for _, fut in group:  # the database is away: every request gets a 503 now
                    _fail(fut, exc)
                continue
            except Exception as exc:
                if len(group) > 1:
                    # One bad request must not fail the others: store each on its own.
                    for sub, fut in group:
                        await self._store_alone(sub, fut, slot)
                else:
                    await self._store_alone(*group[0], slot, failure=exc)
                continue
            for _, fut in group:
                _done(fut)

    async def _store_alone(
        self,
        sub: Submission,
        fut: asyncio.Future[None],
        slot: int,
        failure: Exception | None = None,
    ) -> None:
        """Store one submission; if that fails after validation (a consumer, the scoring:
        anything but the database being away), store its events without the downstream
        work, their leads marked for repair, rather than refuse valid events."""
        try:
            if failure is None:
                try:
                    await self._store_with_retries([sub], slot)
                    _done(fut)
                    return
                except StorageUnavailable:
                    raise
                except Exception as exc:
                    failure = exc
            logger.error(
                "storing a submission failed after validation; storing its %d events without "
                "their leads' profile, score and webhooks, the leads marked for repair",
                len(sub.events),
                exc_info=failure,
            )
            await self._store_with_retries([sub], slot, failure=failure)
            self.stats["unfolded_submissions"] += 1
        except Exception as exc:
            logger.exception("storing a submission failed")
            _fail(fut, exc)
        else:
            _done(fut)

    async def _connection(self, slot: int) -> AsyncConnection:
        conn = self._conns[slot]
        if conn is None or conn.closed or conn.invalidated:
            await self._drop(slot)
            conn = self._conns[slot] = await self._engine.connect()
            await prepare_flusher(conn)
        return conn

    async def _drop(self, slot: int) -> None:
        conn, self._conns[slot] = self._conns[slot], None
        if conn is not None:
            with contextlib.suppress(Exception):
                if not conn.invalidated:
                    await conn.invalidate()
                await conn.close()

    async def _store_with_retries(
        self, subs: list[Submission], slot: int, failure: Exception | None = None
    ) -> None:
        """Store the group, retrying conflicts; with `failure` (what made the normal way fail),
        without the downstream work (see `store_group`'s `fold`)."""
        started = time.perf_counter()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                conn = await self._connection(slot)
                async with group_transaction(conn):
                    marks = await store_group(
                        conn,
                        subs,
                        visit_timeout=self._visit_timeout,
                        store_bots=self._settings.store_bot_events,
                        scorer=self._scorer,
                        after_group=self._after_group,
                        fold=failure is None,
                    )
                    await mark_for_repair(conn, marks, repr(failure))
                for hook in self._after_commit:
                    try:
                        hook(conn)
                    except Exception:  # committed: a wake-up that fails must not re-store it
                        logger.exception("an after-commit hook failed")
                self._committed(subs, len(marks), time.perf_counter() - started)
                return
            except RetryGroup:
                pass
            except (DBAPIError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                # asyncpg's own errors come from the statements sent to it directly.
                if database_unavailable(exc) or isinstance(exc, asyncpg.InterfaceError):
                    # Unreachable, starting up, shutting down, out of connections, or a
                    # connection that broke (restart, failover): a short retry on a new
                    # connection, then a 503.
                    await self._drop(slot)
                    if attempt >= 3:
                        raise StorageUnavailable(str(exc)) from exc
                elif sqlstate(exc) not in RETRYABLE_SQLSTATES:
                    raise  # a deadlock or a serialization failure is retried, not this
            self.stats["retries"] += 1
            GROUP_RETRIES.inc()
            if attempt == MAX_ATTEMPTS:
                raise StorageUnavailable("gave up storing a group after repeated conflicts")
            await asyncio.sleep(random.uniform(0, 0.005 * attempt))

    def _committed(self, subs: list[Submission], marked: int, seconds: float) -> None:
        events = duplicates = crawlers = suppressed = 0
        for sub in subs:
            events += len(sub.events)
            duplicates += sub.outcomes.count(DUPLICATE)
            crawlers += sub.outcomes.count(BOT)
            suppressed += sub.outcomes.count(SUPPRESSED)
        self.stats["leads_marked_for_repair"] += marked
        self.stats["groups"] += 1
        self.stats["submissions"] += len(subs)
        self.stats["events"] += events
        self.stats["suppressed_events"] += suppressed
        count_group(events, duplicates, crawlers, seconds, suppressed)
        if logger.isEnabledFor(logging.DEBUG):  # a line per group: at debug level only
            logger.debug(
                "group committed: %d events of %d requests",
                events,
                len(subs),
                extra={
                    "request_ids": [s.request_id for s in subs if s.request_id is not None],
                    "events": events,
                    "duplicates": duplicates,
                    "crawlers": crawlers,
                    "duration_ms": round(seconds * 1000, 2),
                },
            )


def _done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _fail(fut: asyncio.Future[None], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
