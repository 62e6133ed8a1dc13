"""Background work: re-scoring jobs, temperature refresh, webhook delivery and timers, lead
repairs.

It runs inside `leadheat serve` by default and in any number of `leadheat worker` processes
for scale. Every loop coordinates through the database (row locks with SKIP LOCKED, leases
that expire when a worker dies), so replicas and workers never need to know of each other.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.scoring.scorer import RuleSetCache

if TYPE_CHECKING:
    from app.ingestion.store import AfterGroup

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackgroundContext:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    rule_sets: RuleSetCache
    # Where lead changes made in the background go (the webhook outbox), as ingestion's do.
    lead_changes: "AfterGroup | None" = None


# A loop runs until `stop` is set; it must return promptly after that.
BackgroundLoop = Callable[[BackgroundContext, asyncio.Event], Awaitable[None]]


def background_loops() -> list[tuple[str, BackgroundLoop]]:
    """Every domain's loops (the `LOOPS` of scoring's `rescoring`, webhooks' `loops` and
    ingestion's `repair_worker`)."""
    from app.ingestion import repair_worker
    from app.scoring import rescoring
    from app.webhooks import loops as webhooks_loops

    return [*rescoring.LOOPS, *webhooks_loops.LOOPS, *repair_worker.LOOPS]


class BackgroundRunner:
    """Runs the background loops as tasks; a loop that crashes is logged and restarted."""

    def __init__(self, context: BackgroundContext) -> None:
        self.context = context
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for name, loop in background_loops():
            self._tasks.append(asyncio.create_task(self._supervise(name, loop), name=name))

    async def _supervise(self, name: str, loop: BackgroundLoop) -> None:
        while not self._stop.is_set():
            try:
                await loop(self.context, self._stop)
            except Exception:
                logger.exception("background loop %s crashed; restarting in 1 s", name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=1.0)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
