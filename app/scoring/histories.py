"""Leads' stored events read in batches, for replays (preview, preview jobs, re-scoring): one
query for a batch of leads instead of one per lead, and only the columns scoring needs."""

import uuid
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.tables import Event

_events = cast(Table, Event.__table__)

# (message_id, type, name, properties, context, timestamp): what `stored_scoring_events` takes.
HistoryRow = tuple[Any, ...]


async def histories(
    conn: AsyncConnection, site_id: uuid.UUID, lead_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[HistoryRow]]:
    """The leads' stored (not bot) events as rows for `stored_scoring_events`, each lead's in
    time order (a lead without events is absent), in one query.

    Of the context only `page.url` matters to scoring (`page_url`): the database extracts it
    (as JSON, so a url that is not text stays what it is and `page_url` judges it as before),
    and the rest (user agent, ...) is neither sent nor decoded."""
    if not lead_ids:
        return {}
    t = _events
    result = await conn.execute(
        select(t.c.lead_id, t.c.message_id, t.c.type, t.c.name, t.c.properties)
        .add_columns(t.c.context[("page", "url")], t.c.timestamp)
        .where(t.c.site_id == site_id, t.c.lead_id.in_(lead_ids), t.c.is_bot.is_(False))
        .order_by(t.c.lead_id, t.c.timestamp, t.c.id)
    )
    by_lead: dict[uuid.UUID, list[HistoryRow]] = {}
    for lead_id, message_id, kind, name, properties, url, at in result.all():
        context = None if url is None else {"page": {"url": url}}
        by_lead.setdefault(lead_id, []).append((message_id, kind, name, properties, context, at))
    return by_lead
