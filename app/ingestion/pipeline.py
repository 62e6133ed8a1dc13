"""Group commit: concurrent requests' events share one transaction and one fsync.

A request hands its events to the pipeline and waits; a flusher takes everything queued so
far, stores it in one transaction, commits, and only then answers every waiting request. At
low load a group is one request (no added latency); under load, groups grow by themselves
while the previous commit is in flight. An answered request's events are durable.
"""

import asyncio
import logging
import random
from collections import deque
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import IngestionSettings
from app.ingestion.store import AfterGroup, RetryGroup, Scorer, Submission, store_group

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
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._scorer = scorer
        self._after_group = tuple(after_group)
        self._visit_timeout = timedelta(minutes=settings.visit_timeout_minutes)
        self._queue: deque[tuple[Submission, asyncio.Future[None]]] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        # Counters for operators and benchmarks: how well commits are being grouped.
        self.stats = {"groups": 0, "submissions": 0, "events": 0, "retries": 0}
        # SQLite has one writer: more flushers would only queue on its lock.
        self._flushers = 1 if engine.dialect.name == "sqlite" else settings.flushers

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._flush_loop(), name=f"ingest-flusher-{i}")
            for i in range(self._flushers)
        ]

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        self._closing = True
        self._wake.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

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

    async def _flush_loop(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            group = self._take()
            try:
                await self._store_with_retries([s for s, _ in group])
            except StorageUnavailable as exc:
                for _, fut in group:  # the database is away: every request gets a 503 now
                    _fail(fut, exc)
                continue
            except Exception as exc:
                if len(group) > 1:
                    # One bad request must not fail the others: store each on its own.
                    for sub, fut in group:
                        try:
                            await self._store_with_retries([sub])
                        except Exception as single_exc:
                            logger.exception("storing a submission failed")
                            _fail(fut, single_exc)
                        else:
                            _done(fut)
                    continue
                logger.exception("storing a submission failed")
                _fail(group[0][1], exc)
                continue
            for _, fut in group:
                _done(fut)

    async def _store_with_retries(self, subs: list[Submission]) -> None:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                async with self._engine.begin() as conn:
                    await store_group(
                        conn,
                        subs,
                        visit_timeout=self._visit_timeout,
                        store_bots=self._settings.store_bot_events,
                        scorer=self._scorer,
                        after_group=self._after_group,
                    )
                self.stats["groups"] += 1
                self.stats["submissions"] += len(subs)
                self.stats["events"] += sum(len(s.events) for s in subs)
                return
            except RetryGroup:
                pass
            except DBAPIError as exc:
                # A deadlock, or a pooled connection the server closed (restart, failover).
                if not exc.connection_invalidated and _sqlstate(exc) not in RETRYABLE_SQLSTATES:
                    raise
            except OSError as exc:  # the database is unreachable: a short retry, then a 503
                if attempt >= 3:
                    raise StorageUnavailable(str(exc)) from exc
            self.stats["retries"] += 1
            if attempt == MAX_ATTEMPTS:
                raise StorageUnavailable("gave up storing a group after repeated conflicts")
            await asyncio.sleep(random.uniform(0, 0.005 * attempt))


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    cause = getattr(orig, "__cause__", None)
    return getattr(orig, "sqlstate", None) or getattr(cause, "sqlstate", None)


def _done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _fail(fut: asyncio.Future[None], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
