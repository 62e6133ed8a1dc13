"""A lead rebuilt from its stored events with ingestion's fold: by the repair job
(`repair_worker.py`), and by ingestion for a lead that receives an event older than its last
one (`store.py`), so that its profile equals a replay whatever the arrival order."""

import uuid
from datetime import timedelta
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain import profile as lead_profile
from app.domain.events import IngestEvent
from app.domain.lead_rows import LeadRow, copy_columns
from app.domain.tables import Event

_events = cast(Table, Event.__table__)
# What a rebuild keeps from the stored lead: the sales team's work, not derived from events
# (the scoring columns are replayed, or kept when scoring is off).
KEPT = (
    "merged_into_id",
    "created_at",
    "status",
    "status_changed_at",
    "lost_reason",
    "lost_note",
    "contact_by",
    "first_contacted_at",
    "became_hot_at",
    "score",
    "temperature",
    "score_state",
    "rule_set_version",
    "scored_at",
)
_EVENT_FIELDS = (
    "message_id",
    "type",
    "name",
    "anonymous_id",
    "user_id",
    "previous_id",
    "timestamp",
    "original_timestamp",
    "sent_at",
    "received_at",
    "properties",
    "traits",
    "context",
    "is_bot",
    "lead_id",
)
_JSON = ("properties", "traits", "context")


async def stored_events(conn: AsyncConnection, lead_id: uuid.UUID) -> list[IngestEvent]:
    """The lead's stored events (bots excluded), in the order ingestion folds them."""
    rows = await conn.execute(
        select(*(_events.c[f] for f in _EVENT_FIELDS))
        .where(_events.c.lead_id == lead_id, _events.c.is_bot.is_(False))
        .order_by(_events.c.timestamp, _events.c.id)
    )
    return [
        IngestEvent(**{f: (v if v is not None or f not in _JSON else {}) for f, v in row.items()})
        for row in rows.mappings()
    ]


def rebuild_profile(lead: LeadRow, events: list[IngestEvent], visit_timeout: timedelta) -> LeadRow:
    """The lead's profile folded from scratch over `events` (ingestion's fold)."""
    profile = lead_profile.new_profile(lead["id"], lead["site_id"], lead["created_at"])
    copy_columns(profile, lead, KEPT)
    for event in events:
        lead_profile.apply_event(profile, event, visit_timeout)
    return profile
