"""This domain's background loops, run by app.worker (in `leadheat serve` and `leadheat worker`).

- re-scoring jobs: claim a pending job (or one whose worker's lease expired) and re-score the
  site's leads with the job's rule-set version (`rules_service.run_job`);
- temperature refresher: decay and expiring hard-rule holds change a lead's temperature with
  time alone, but ingestion only stores it when an event arrives, so warm and hot leads not
  scored for a while are re-evaluated at the current time and written back when they change.

Each loop's one pass is a function of its own with the time as a parameter, so tests drive
passes directly with a controllable clock.
"""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from app.db import utcnow
from app.leads.models import Lead
from app.scoring import engine, rules_service
from app.scoring.service import RuleSetCache, facts_from_profile, record_result
from app.worker import BackgroundContext, BackgroundLoop

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


async def rescore_next_job(context: BackgroundContext, clock: Clock = utcnow) -> str | None:
    """Claim one re-scoring job and run it; answer how it ended (None: no job was waiting)."""
    config = rules_service.RescoreConfig.from_settings(context.settings)
    job = await rules_service.claim_job(context.engine, clock(), config.lease)
    if job is None:
        return None
    logger.info(
        "re-scoring %s leads of site %s with version %s",
        job.total,
        job.site_id,
        job.rule_set_version,
    )
    return await rules_service.run_job(context.engine, job, config, clock)


async def rescore_jobs_loop(
    context: BackgroundContext,
    stop: asyncio.Event,
    *,
    clock: Clock = utcnow,
    iterations: int | None = None,
) -> None:
    """Run jobs one after another; when there are none, look again every poll interval."""
    done = 0
    while not stop.is_set() and (iterations is None or done < iterations):
        done += 1
        if await rescore_next_job(context, clock) is None and iterations is None:
            await _wait(stop, context.settings.scoring.rescore_poll_seconds)


async def refresh_temperatures(
    context: BackgroundContext, now: datetime, *, rule_sets: RuleSetCache | None = None
) -> int:
    """Re-evaluate, at `now`, the warm and hot leads not scored for the refresh interval;
    write back those whose score or temperature changed. Answers how many were written.

    Batches in id order, each in its own transaction; leads another transaction holds
    (ingestion, a re-scoring job) are skipped: they are being scored anyway."""
    settings = context.settings.scoring
    cutoff = now - timedelta(seconds=settings.refresh_interval_seconds)
    cache = rule_sets or context.rule_sets
    t = Lead.__table__
    written = 0
    after: uuid.UUID | None = None
    while True:
        query = select(t).where(
            t.c.temperature.in_(("warm", "hot")),
            t.c.merged_into_id.is_(None),
            t.c.scored_at < cutoff,
        )
        if after is not None:
            query = query.where(t.c.id > after)
        async with context.engine.begin() as conn:
            rows = await conn.execute(
                query.order_by(t.c.id)
                .limit(settings.rescore_batch_leads)
                .with_for_update(key_share=True, skip_locked=True)
            )
            profiles = [dict(row) for row in rows.mappings()]
            if not profiles:
                return written
            after = profiles[-1]["id"]
            compiled = await cache.get_many(conn, {p["site_id"] for p in profiles})
            changed = [p for p in profiles if _reevaluate(p, compiled[p["site_id"]], now)]
            await rules_service.write_scores(conn, changed)
            written += len(changed)


def _reevaluate(profile: dict[str, Any], compiled: engine.CompiledRuleSet, now: datetime) -> bool:
    if not profile["score_state"] or profile["rule_set_version"] != compiled.version:
        return False  # scored by another version: a re-scoring job or ingestion replays it
    result = engine.evaluate(compiled, profile["score_state"], facts_from_profile(profile), now)
    if result.score == profile["score"] and result.temperature == profile["temperature"]:
        return False
    record_result(profile, result, now)
    return True


async def temperature_refresher_loop(
    context: BackgroundContext,
    stop: asyncio.Event,
    *,
    clock: Clock = utcnow,
    iterations: int | None = None,
) -> None:
    """`refresh_temperatures` every refresh interval."""
    done = 0
    while not stop.is_set() and (iterations is None or done < iterations):
        done += 1
        written = await refresh_temperatures(context, clock())
        if written:
            logger.info("temperature refresher updated %d leads", written)
        if iterations is None:
            await _wait(stop, context.settings.scoring.refresh_interval_seconds)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


LOOPS: list[tuple[str, BackgroundLoop]] = [
    ("scoring.rescore_jobs", rescore_jobs_loop),
    ("scoring.temperature_refresher", temperature_refresher_loop),
]
