"""Leads' stored events read in batches, for replays (preview, preview jobs, re-scoring): one
query for a batch of leads instead of one per lead, and only the columns scoring needs."""

import uuid
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.tables import Event
from app.scoring.scorer import stored_scoring_events
from app.scoring.types import ScoringEvent

_events = cast(Table, Event.__table__)

# (message_id, type, name, properties, context, timestamp): what `stored_scoring_events` takes.
HistoryRow = tuple[Any, ...]


async def _histories(
    conn: AsyncConnection, site_id: uuid.UUID, lead_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[HistoryRow]]:
    """The leads' stored (not bot) events as rows for `stored_scoring_events`, each lead's in
    time order (a lead without events is absent), in one query. Of the context only
    `page.url` matters to scoring: the database extracts it (as JSON, so a url that is not
    text stays what it is and `page_url` judges it as before), and the rest (user agent, ...)
    is neither sent nor decoded."""
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


# The same rows, read through asyncpg directly: a preview or re-scoring job reads every event of
# a site, and SQLAlchemy's row processing (UTC conversion of an already-UTC timestamptz, a JSON
# decoder call for each url) cost more than the replay itself. A url that is text (nearly all)
# comes as text, any other JSON value as JSON, as above.
_PG_HISTORIES = """
SELECT lead_id, message_id, type, name, properties,
       CASE WHEN jsonb_typeof(context #> '{page,url}') = 'string'
            THEN context #>> '{page,url}' END,
       CASE WHEN jsonb_typeof(context #> '{page,url}') <> 'string'
            THEN context #> '{page,url}' END,
       "timestamp"
FROM events
WHERE site_id = $1 AND lead_id = ANY($2::uuid[]) AND NOT is_bot
ORDER BY lead_id, "timestamp", id
"""


async def scoring_histories(
    conn: AsyncConnection, site_id: uuid.UUID, lead_ids: list[uuid.UUID], visit_timeout: timedelta
) -> dict[uuid.UUID, list[ScoringEvent]]:
    """What `stored_scoring_events` makes of each lead's rows of `_histories`, in one query. On
    PostgreSQL the events are made as the records are read: a job makes one for every stored
    event of a site, and a pass over tuples built only to be read again cost a tenth of it."""
    if not lead_ids:
        return {}
    if conn.dialect.name != "postgresql":
        rows = await _histories(conn, site_id, lead_ids)
        return {lead: stored_scoring_events(found, visit_timeout) for lead, found in rows.items()}
    raw = await conn.get_raw_connection()
    records = await raw.driver_connection.fetch(_PG_HISTORIES, site_id, lead_ids)  # type: ignore[union-attr]
    by_lead: dict[uuid.UUID, list[ScoringEvent]] = {}
    current: Any = None
    events: list[ScoringEvent] = []
    append = events.append
    make = ScoringEvent
    visit, last = 0, None
    # The steps of `stored_scoring_events` on the same values (tests/scoring/test_histories.py).
    for lead_id, message_id, event_type, name, properties, text_url, json_url, at in records:
        if lead_id != current:  # rows come grouped by lead
            current = lead_id
            events = by_lead[uuid.UUID(bytes=lead_id.bytes)] = []
            append = events.append
            visit, last = 0, None
        if last is None or at - last > visit_timeout:
            visit += 1
        last = at
        if event_type == "track":
            kind = name or ""
        elif event_type == "screen":
            kind = "page"
        else:
            kind = event_type
        url = text_url if text_url is not None else json_url
        if not url:
            url = properties.get("url") if properties else None
        append(
            make(
                message_id, kind, properties or {}, at, visit, url if isinstance(url, str) else None
            )
        )
    return by_lead
