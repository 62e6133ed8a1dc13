"""The repair job, run by app.worker: leads marked in `lead_repairs` (their events stored, the
downstream work failed) are rebuilt from their stored events with the same fold and scoring
replay as ingestion and re-scoring use; the change is handed to the lead-change consumers
(webhooks: a lead that turned hot gets its `lead.hot`, cart timers start or stop), and the
mark is cleared. A repair that fails too stays marked and is tried again after a backoff.

Each lead is repaired in its own transaction, locking the lead and then its mark (the order
ingestion takes them in), the mark with SKIP LOCKED so that replicas share the work."""

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Row, Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app import wakeups
from app.background import BackgroundContext, BackgroundLoop
from app.db import utcnow, writer
from app.domain import lead_writes
from app.domain.changes import LeadChange
from app.domain.lead_rows import LeadRow, lead_row
from app.domain.tables import Lead
from app.ingestion.history import rebuild_profile, stored_events
from app.ingestion.repairs import REPAIRS, LeadRepair, RepairMark, backoff, mark_for_repair
from app.scoring.scorer import rescore_from_history

logger = logging.getLogger(__name__)

POLL_SECONDS = 30.0
_repairs = cast(Table, LeadRepair.__table__)
_leads = cast(Table, Lead.__table__)


async def repair_lead(
    context: BackgroundContext, conn: AsyncConnection, mark: Row[Any], now: datetime
) -> LeadRow | None:
    """Rebuild the marked lead (locked by the caller) and write it; answers the new profile
    (None: the lead was merged, and the mark was handed to the lead it was merged into)."""
    row = (await conn.execute(select(_leads).where(_leads.c.id == mark.lead_id))).first()
    lead = lead_row(row._mapping) if row is not None else None
    if lead is None:
        return None  # deleted (its mark goes with it)
    if lead["merged_into_id"] is not None:
        survivor = RepairMark(
            lead["merged_into_id"], mark.site_id, mark.since, None, False, "merged"
        )
        await mark_for_repair(conn, [survivor], "merged", now)
        return None
    visit_timeout = timedelta(minutes=context.settings.ingestion.visit_timeout_minutes)
    events = await stored_events(conn, lead["id"])
    profile = rebuild_profile(lead, events, visit_timeout)
    if context.settings.scoring.enabled:
        compiled = (await context.rule_sets.get_many(conn, [lead["site_id"]]))[lead["site_id"]]
        await rescore_from_history(conn, profile, compiled, visit_timeout, now)
    profile["updated_at"] = now
    await lead_writes.update_profiles(conn, [profile])
    if context.lead_changes is not None:
        change = LeadChange(
            profile=profile,
            previous_temperature=mark.temperature_before,
            previously_identified=bool(mark.identified_before),
            events=tuple(e for e in events if e.received_at >= mark.since),
        )
        await context.lead_changes(conn, [change])
    return profile


async def repair_next(context: BackgroundContext, now: datetime) -> str | None:
    """Repair the lead whose mark is due first; answers "repaired", "failed" (retried after a
    backoff), "handed over" (merged: its survivor is marked instead), "taken" (another worker
    had it), or None when no mark is due."""
    engine = writer(context.engine)
    async with engine.connect() as conn:
        lead_id = await conn.scalar(
            select(_repairs.c.lead_id)
            .where(_repairs.c.due_at <= now)
            .order_by(_repairs.c.due_at)
            .limit(1)
        )
    if lead_id is None:
        return None
    mark = None
    try:
        async with engine.begin() as conn:
            locked = select(_leads.c.id).where(_leads.c.id == lead_id)
            await conn.execute(locked.with_for_update(key_share=True))
            mark = (
                await conn.execute(
                    select(_repairs)
                    .where(_repairs.c.lead_id == lead_id, _repairs.c.due_at <= now)
                    .with_for_update(skip_locked=True)
                )
            ).first()
            if mark is None:
                return "taken"
            repaired = await repair_lead(context, conn, mark, now)
            await conn.execute(delete(_repairs).where(_repairs.c.lead_id == lead_id))
        return "repaired" if repaired is not None else "handed over"
    except Exception as exc:
        if mark is None:
            raise
        logger.exception("repairing lead %s failed (attempt %d)", lead_id, mark.attempts + 1)
        async with engine.begin() as conn:
            await conn.execute(
                update(_repairs)
                .where(_repairs.c.lead_id == lead_id)
                .values(
                    attempts=_repairs.c.attempts + 1,
                    due_at=now + backoff(mark.attempts + 1),
                    error=repr(exc)[:2000],
                )
            )
        return "failed"


async def repair_due(context: BackgroundContext, now: datetime, limit: int = 100) -> int:
    """Repair up to `limit` due leads; answers how many were repaired."""
    repaired = 0
    for _ in range(limit):
        outcome = await repair_next(context, now)
        if outcome is None:
            break
        repaired += outcome == "repaired"
    return repaired


async def repair_loop(context: BackgroundContext, stop: asyncio.Event) -> None:
    """Repair what is due; then sleep until a commit marks leads (app.wakeups) or the poll
    interval (retries after a backoff, a missed wake-up) passes."""

    async def one_pass() -> bool:
        repaired = await repair_due(context, utcnow())
        if repaired:
            logger.info("repaired %d leads from their stored events", repaired)
        return False  # everything due was repaired or put off: sleep

    await wakeups.serve_passes(context.engine, REPAIRS, stop, one_pass, POLL_SECONDS)


LOOPS: list[tuple[str, BackgroundLoop]] = [("ingestion.lead_repairs", repair_loop)]
