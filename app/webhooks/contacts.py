"""First contact: recording it stops the speed-to-lead clock; and the speed-to-lead figures."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import WebhookSettings
from app.db import utcnow
from app.domain import lead_writes
from app.domain.lead_writes import LeadPatch
from app.errors import NotFound
from app.leads.models import Lead
from app.webhooks import timers
from app.webhooks.models import LeadContact, LeadTimer
from app.webhooks.schemas import ContactIn


async def record_contact(
    session: AsyncSession, site_id: uuid.UUID, lead_id: uuid.UUID, body: ContactIn
) -> tuple[LeadContact, Lead]:
    """Record a contact with a lead (a merged lead's id reaches the lead it joined). The first
    one sets `first_contacted_at`, moves a new lead to `contacted` and cancels its timers."""
    now = utcnow()
    lead = await session.get(Lead, lead_id, with_for_update=True)
    seen = set()
    while lead is not None and lead.merged_into_id is not None and lead.id not in seen:
        seen.add(lead.id)
        lead = await session.get(Lead, lead.merged_into_id, with_for_update=True)
    if lead is None or lead.site_id != site_id:
        raise NotFound("No such lead.")
    at = body.at or now
    contact = LeadContact(
        site_id=site_id,
        lead_id=lead.id,
        channel=body.channel,
        by=body.by,
        note=body.note,
        at=at,
        created_at=now,
    )
    session.add(contact)
    patch: LeadPatch = {}
    if lead.first_contacted_at is None or at < lead.first_contacted_at:
        patch["first_contacted_at"] = at
    if lead.status == "new":
        patch.update({"status": "contacted", "status_changed_at": now})
    await lead_writes.patch_lead(session, lead, patch, now)
    t = cast(Table, LeadTimer.__table__)
    await session.execute(
        update(t)
        .where(t.c.lead_id == lead.id, t.c.kind == timers.FIRST_CONTACT, t.c.status == "pending")
        .values(status="cancelled")
    )
    await session.flush()
    return contact, lead


@dataclass(frozen=True)
class SpeedFigures:
    hot_leads: int
    contacted: int
    median_seconds: float | None
    p90_seconds: float | None
    within_minutes: dict[str, float]
    overdue_now: int


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return None
    position = (len(sorted_values) - 1) * q
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    value = sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)
    return round(value, 1)


async def speed_to_lead(
    session: AsyncSession,
    site_id: uuid.UUID,
    start: datetime,
    end: datetime,
    settings: WebhookSettings,
    now: datetime | None = None,
) -> SpeedFigures:
    """Hot -> first contact for the leads that turned hot in [start, end)."""
    now = now or utcnow()
    live = and_(Lead.site_id == site_id, Lead.merged_into_id.is_(None))
    rows = (
        await session.execute(
            select(Lead.became_hot_at, Lead.first_contacted_at).where(
                live, Lead.became_hot_at >= start, Lead.became_hot_at < end
            )
        )
    ).all()
    waits = sorted(
        max(0.0, (contacted - hot).total_seconds())
        for hot, contacted in rows
        if contacted and hot is not None  # hot is never None: the query filters on it
    )
    marks = sorted({settings.first_contact_window_minutes, *settings.escalation_marks_minutes})
    within = {
        f"{m:g}": round(sum(1 for w in waits if w <= m * 60) / len(rows), 4) if rows else 0.0
        for m in marks
    }
    overdue = await session.scalar(
        select(func.count())
        .select_from(Lead)
        .where(
            live,
            Lead.contact_by < now,
            Lead.first_contacted_at.is_(None),
            Lead.status == "new",
        )
    )
    return SpeedFigures(
        hot_leads=len(rows),
        contacted=len(waits),
        median_seconds=percentile(waits, 0.5),
        p90_seconds=percentile(waits, 0.9),
        within_minutes=within,
        overdue_now=int(overdue or 0),
    )
