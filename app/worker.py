"""Background work: re-scoring jobs, temperature refresh, webhook delivery and timers, lead
repairs, the funnel's rollup, event retention, the sweep of expired sign-in sessions.

It runs inside `leadheat serve` by default and in any number of `leadheat worker` processes
for scale. Every loop coordinates through the database (row locks with SKIP LOCKED, leases
that expire when a worker dies), so replicas and workers never need to know of each other.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from app import wakeups
from app.audiences import jobs as audience_jobs
from app.audiences.membership import Memberships
from app.background import BackgroundContext, BackgroundLoop
from app.channel_actions import polling as telegram_polling
from app.config import WebhookSettings
from app.db import utcnow
from app.domain.changes import Consumers
from app.ingestion import repair_worker
from app.leads import moves as leads_moves
from app.leads import rollup as leads_rollup
from app.leads.moves import TemperatureMoves
from app.privacy import retention as privacy_retention
from app.scoring import job_ranges, preview_jobs, rescoring
from app.scoring.scorer import RuleSetCache
from app.team import service as team_service
from app.webhooks import loops as webhooks_loops
from app.webhooks.consumer import WebhookConsumer

logger = logging.getLogger(__name__)

SESSION_SWEEP_SECONDS = 3600.0


async def session_sweep_loop(
    context: BackgroundContext,
    stop: asyncio.Event,
    *,
    clock: Callable[[], datetime] = utcnow,
    iterations: int | None = None,
) -> None:
    """Expired sign-in sessions deleted every hour (app.team sits below app.background, so its
    loop is here). No lease: the delete is idempotent and, the table being small, cheap."""
    done = 0
    while not stop.is_set() and (iterations is None or done < iterations):
        if iterations is None:  # an interval after start: a short-lived process never sweeps
            await wakeups.sleep(stop, SESSION_SWEEP_SECONDS)
            if stop.is_set():
                break
        done += 1
        swept = await team_service.sweep_expired_sessions(context.engine, clock())
        if swept:
            logger.info("sessions: deleted %d expired", swept)


def background_loops() -> list[tuple[str, BackgroundLoop]]:
    """Every domain's loops (each domain's `worker.LOOPS`)."""
    return [
        *rescoring.LOOPS,
        *preview_jobs.LOOPS,
        *webhooks_loops.LOOPS,
        *repair_worker.LOOPS,
        *leads_rollup.LOOPS,
        *leads_moves.LOOPS,
        *privacy_retention.LOOPS,
        ("team.session_sweep", session_sweep_loop),
        *telegram_polling.LOOPS,
        *audience_jobs.LOOPS,
    ]


def lead_change_consumers(
    settings: WebhookSettings, rule_sets: RuleSetCache
) -> tuple[Consumers, Memberships]:
    """What every lead change (ingestion's, the background jobs') is handed to, in its
    transaction: the webhooks' consumer, audience membership, the funnel's temperature moves;
    and the membership port of the temperature refresher."""
    memberships = Memberships(settings, rule_sets)
    consumers = Consumers(WebhookConsumer(settings, rule_sets), memberships, TemperatureMoves())
    return consumers, memberships


class BackgroundRunner:
    """Runs the background loops as tasks; a loop that crashes is logged and restarted."""

    def __init__(self, context: BackgroundContext) -> None:
        self.context = context
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for name, loop in background_loops():
            self._tasks.append(asyncio.create_task(self._supervise(name, loop), name=name))
        if self.context.engine.dialect.name == "postgresql":  # SQLite: one process
            self._tasks.append(
                asyncio.create_task(
                    self._supervise("wakeups.listen", lambda c, s: wakeups.listen(c.engine, s)),
                    name="wakeups.listen",
                )
            )
        # The jobs' processes are forked from a server that has imported them: started now,
        # off the event loop, so that a job's first process does not wait for it.
        self._tasks.append(
            asyncio.create_task(asyncio.to_thread(job_ranges.start_forkserver, [__name__]))
        )

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
