"""The transactional outbox: messages are written in the same transaction as the change that
causes them, so a crash at any moment loses nothing and delivery is at least once.

`enqueue` writes one message and a delivery row per subscribed endpoint, enabled or not: a
disabled endpoint's deliveries wait, pending, and are sent once it is enabled again (nothing
is lost while a shop repairs its receiver). The process that committed wakes its delivery
loop right after the commit (`Notifier`, app.wakeups); a process that runs no delivery loop
(a job process, an API replica without background work) wakes the others' by NOTIFY.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import wakeups
from app.logs import REQUEST_ID
from app.team.models import User
from app.wakeups import Wakeups
from app.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookMessage

LEAD_HOT = "lead.hot"
LEAD_TEMPERATURE_CHANGED = "lead.temperature_changed"
LEAD_IDENTIFIED = "lead.identified"
LEAD_FIRST_CONTACT_OVERDUE = "lead.first_contact_overdue"
LEAD_FIRST_CONTACT_ESCALATED = "lead.first_contact_escalated"
LEAD_REASSIGNED = "lead.reassigned"
LEAD_AT_RISK = "lead.at_risk"
CART_ABANDONED = "cart.abandoned"
CART_FOLLOW_UP = "cart.follow_up"
AUDIENCE_ENTERED = "audience.entered"
AUDIENCE_LEFT = "audience.left"
WEBHOOK_TEST = "webhook.test"
EVENT_TYPES = (
    LEAD_HOT,
    LEAD_TEMPERATURE_CHANGED,
    LEAD_IDENTIFIED,
    LEAD_FIRST_CONTACT_OVERDUE,
    LEAD_FIRST_CONTACT_ESCALATED,
    LEAD_REASSIGNED,
    LEAD_AT_RISK,
    CART_ABANDONED,
    CART_FOLLOW_UP,
    AUDIENCE_ENTERED,
    AUDIENCE_LEFT,
)

# Also sent to people's notification channels (app.channels): to the user ids in the data's
# `notify` list when there is one, else to the lead's owner; and to the site's team channels.
CHANNEL_EVENT_TYPES: tuple[str, ...] = (
    LEAD_HOT,
    LEAD_FIRST_CONTACT_OVERDUE,
    LEAD_FIRST_CONTACT_ESCALATED,
    LEAD_REASSIGNED,
    LEAD_AT_RISK,
)

DELIVERIES = "webhooks.deliveries"  # the loops' wake-up names (app.wakeups)
TIMERS = "webhooks.timers"


class Notifier:
    """Wakes the delivery and timer loops once a transaction that wrote outbox rows or timers
    has committed (app.wakeups: this process's at once, the others' by NOTIFY when this
    process runs no such loop)."""

    def __init__(self, wakeups: Wakeups) -> None:
        self.wakeups = wakeups
        self.deliveries = wakeups.event(DELIVERIES)
        self.timers = wakeups.event(TIMERS)

    def wake_committed(self, conn: AsyncConnection) -> None:
        """Wake what `conn`'s just-committed transaction asked for, for a connection that is
        kept out of the pool between transactions (the ingestion flushers': no check-in)."""
        self.wakeups.wake_for(conn.info)

    def wake(self, deliveries: bool = True, timers: bool = False) -> None:
        self.wakeups.wake(*((DELIVERIES,) if deliveries else ()), *((TIMERS,) if timers else ()))


def notifier_for(engine: AsyncEngine) -> Notifier:
    """The notifier of this engine's process."""
    return Notifier(wakeups.wakeups_for(engine))


async def wake_after_commit(
    conn: AsyncConnection, deliveries: bool = True, timers: bool = False
) -> None:
    """Ask for the loops to be woken when `conn`'s transaction has committed."""
    names = (*((DELIVERIES,) if deliveries else ()), *((TIMERS,) if timers else ()))
    await wakeups.notify(conn, *names)


@dataclass(frozen=True, slots=True)
class NewMessage:
    site_id: uuid.UUID
    event_type: str
    data: dict[str, Any]
    lead_id: uuid.UUID | None = None
    endpoint_id: uuid.UUID | None = None  # only to this endpoint (test events)
    # The requests that caused it (see `request_id_of`); None: the current request's, if any.
    request_ids: tuple[str, ...] = ()


def envelope(event_type: str, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    """The body every consumer gets (the Standard Webhooks recommended shape)."""
    return {"type": event_type, "timestamp": at.isoformat(), "data": data}


def recipients(data: dict[str, Any]) -> set[str]:
    """Whose channels a message goes to: `notify` (user ids) when given, else the owner."""
    notify = data.get("notify")
    if isinstance(notify, list):
        return {str(user_id) for user_id in notify}
    owner = data.get("owner")
    return {str(owner["id"])} if isinstance(owner, dict) and owner.get("id") else set()


def _targets(
    m: NewMessage, endpoints: list[tuple[uuid.UUID, list[str], str, uuid.UUID | None]]
) -> list[uuid.UUID]:
    if m.endpoint_id is not None:
        return [endpoint_id for endpoint_id, *_ in endpoints if endpoint_id == m.endpoint_id]
    people = recipients(m.data) if m.event_type in CHANNEL_EVENT_TYPES else set()
    targets = []
    for endpoint_id, types, kind, user_id in endpoints:
        if kind == "webhook":
            wanted = not types or m.event_type in types
        elif m.event_type not in CHANNEL_EVENT_TYPES:
            wanted = False
        else:  # a person's channel, or the site's team channel (no person)
            wanted = user_id is None or str(user_id) in people
        if wanted:
            targets.append(endpoint_id)
    return targets


def request_id_of(request_ids: Sequence[str]) -> str | None:
    """A message's `request_id`: its requests' ids (a group commit's lead can have events of
    several; the first few), else the request being served (a test message's), if any."""
    if not request_ids:
        return REQUEST_ID.get()
    joined = ",".join(request_ids[:4])
    return joined if len(joined) <= 300 else request_ids[0][:300]


async def subscribed_sites(
    conn: AsyncConnection, site_ids: set[uuid.UUID], event_types: Sequence[str]
) -> set[uuid.UUID]:
    """The sites with an endpoint that takes one of `event_types`: a caller whose messages are
    costly to build (a lead's payload, its top rules) builds only theirs."""
    e = WebhookEndpoint.__table__
    rows = await conn.execute(select(e.c.site_id, e.c.event_types).where(e.c.site_id.in_(site_ids)))
    return {site for site, types in rows if not types or set(event_types) & set(types)}


async def enqueue(
    conn: AsyncConnection, messages: Sequence[NewMessage], now: datetime
) -> list[uuid.UUID]:
    """Write messages and their deliveries in the caller's transaction; returns the ids of
    the messages that some target wants (others are not stored). Targets are the site's
    webhook endpoints subscribed to the type and, for `CHANNEL_EVENT_TYPES`, the recipients'
    channels (`recipients`) and the site's team channels."""
    if not messages:
        return []
    e, u = WebhookEndpoint.__table__, User.__table__
    rows = await conn.execute(
        select(e.c.id, e.c.site_id, e.c.event_types, e.c.kind, e.c.user_id)
        .outerjoin(u, u.c.id == e.c.user_id)
        # A deactivated person's channels get nothing (they stay, should they come back).
        .where(e.c.site_id.in_({m.site_id for m in messages}), u.c.active.is_not(False))
    )
    endpoints: dict[uuid.UUID, list[tuple[uuid.UUID, list[str], str, uuid.UUID | None]]] = {}
    for endpoint_id, site_id, types, kind, user_id in rows:
        endpoints.setdefault(site_id, []).append((endpoint_id, types or [], kind, user_id))
    message_rows: list[dict[str, Any]] = []
    delivery_rows: list[dict[str, Any]] = []
    for m in messages:
        targets = _targets(m, endpoints.get(m.site_id, []))
        if not targets:
            continue
        message_id = uuid.uuid4()
        message_rows.append(
            {
                "id": message_id,
                "site_id": m.site_id,
                "event_type": m.event_type,
                "lead_id": m.lead_id,
                "payload": envelope(m.event_type, now, m.data),
                "created_at": now,
                "request_id": request_id_of(m.request_ids),
            }
        )
        delivery_rows.extend(
            {
                "id": uuid.uuid4(),
                "message_id": message_id,
                "endpoint_id": endpoint_id,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for endpoint_id in targets
        )
    if message_rows:
        await conn.execute(insert(cast(Table, WebhookMessage.__table__)), message_rows)
        await conn.execute(insert(cast(Table, WebhookDelivery.__table__)), delivery_rows)
        await wake_after_commit(conn)
    return [row["id"] for row in message_rows]
