"""A lead's recorded contacts: the first one stops the speed-to-lead clock."""

from typing import cast

from sqlalchemy import Table, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.domain import lead_writes
from app.domain.lead_writes import LeadPatch
from app.domain.tables import Lead
from app.leads.schemas import ContactIn
from app.webhooks import timers
from app.webhooks.models import LeadContact, LeadTimer


async def record_contact(session: AsyncSession, lead: Lead, body: ContactIn) -> LeadContact:
    """Record a contact with a lead (the caller has resolved and locked it). The first one
    sets `first_contacted_at`, moves a new lead to `contacted` and stops its escalation
    ladder (its pending steps are cancelled)."""
    now = utcnow()
    at = body.at or now
    contact = LeadContact(
        site_id=lead.site_id,
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
        .where(
            t.c.lead_id == lead.id,
            t.c.kind.in_(timers.FIRST_CONTACT_KINDS),
            t.c.status == "pending",
        )
        .values(status="cancelled")
    )
    await session.flush()
    return contact
