"""Storing a group of events in one transaction: identities, leads, events and profiles.

Many requests' events go through here together (group commit, see `pipeline.py`). The work
per group is a fixed number of statements, whatever the number of events:
1. resolve every anonymousId/userId/previousId to a lead (one SELECT), merging leads that
   turn out to be one person, and insert the new identities;
2. lock the existing leads involved, in id order (no deadlocks between replicas);
3. insert the events with ON CONFLICT DO NOTHING RETURNING: what comes back is new, the rest
   are duplicates (clients retry; messageId is unique per site);
4. fold the new events into the lead profiles and write them back.
"""

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import utcnow
from app.ingestion.parsing import IngestEvent
from app.leads import profile as lead_profile
from app.leads.models import Event, Lead, LeadIdentity

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
BOT = "bot"

LEAD_COLUMNS = tuple(c.name for c in Lead.__table__.columns)
_UPDATABLE = tuple(c for c in LEAD_COLUMNS if c not in ("id", "site_id", "created_at"))
_CHUNK = 500  # rows per multi-row statement, well under both drivers' parameter limits


class RetryGroup(Exception):
    """Another transaction changed identities under us; the whole group is tried again."""


# Called once per new event after its lead's profile has been updated (scoring hooks in here).
LeadEventHook = Callable[[dict[str, Any], IngestEvent, datetime], None]


@dataclass
class Submission:
    """One request's events, and what became of each."""

    site_id: uuid.UUID
    events: list[IngestEvent]
    outcomes: list[str] = field(default_factory=list)


def _insert(conn: AsyncConnection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


class _Identities:
    """Resolves ids to leads for one group, merging leads when one event links two of them."""

    def __init__(self) -> None:
        self.known: dict[tuple[uuid.UUID, str, str], uuid.UUID] = {}
        self.parent: dict[uuid.UUID, uuid.UUID] = {}
        self.new_leads: dict[uuid.UUID, uuid.UUID] = {}  # lead id -> site id
        self.new_identities: list[tuple[uuid.UUID, str, str]] = []
        self.existing: set[uuid.UUID] = set()

    async def load(self, conn: AsyncConnection, keys: set[tuple[uuid.UUID, str, str]]) -> None:
        table = LeadIdentity.__table__
        ordered = sorted(keys)
        for start in range(0, len(ordered), _CHUNK):
            chunk = ordered[start : start + _CHUNK]
            rows = await conn.execute(
                select(table.c.site_id, table.c.kind, table.c.value, table.c.lead_id).where(
                    tuple_(table.c.site_id, table.c.kind, table.c.value).in_(chunk)
                )
            )
            for site_id, kind, value, lead_id in rows:
                self.known[(site_id, kind, value)] = lead_id
                self.existing.add(lead_id)

    def find(self, lead_id: uuid.UUID) -> uuid.UUID:
        root = lead_id
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        return root

    def resolve(self, site_id: uuid.UUID, event: IngestEvent) -> uuid.UUID:
        keys: list[tuple[uuid.UUID, str, str]] = []
        if event.user_id:
            keys.append((site_id, "user", event.user_id))
        if event.anonymous_id:
            keys.append((site_id, "anonymous", event.anonymous_id))
        if event.previous_id:
            as_user = (site_id, "user", event.previous_id)
            keys.append(
                as_user if as_user in self.known else (site_id, "anonymous", event.previous_id)
            )
        # The user id's lead survives a merge: it is the customer card the others join.
        leads = [self.find(self.known[k]) for k in keys if k in self.known]
        if leads:
            target = leads[0]
            for other in leads[1:]:
                if other != target:
                    self.parent[other] = target
        else:
            target = uuid.uuid4()
            self.new_leads[target] = site_id
        for key in keys:
            if key not in self.known:
                self.known[key] = target
                self.new_identities.append(key)
        return target

    def merges(self) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """(loser, survivor) pairs among leads that already exist in the database."""
        return [(lead, self.find(lead)) for lead in self.parent if lead in self.existing]


async def store_group(
    conn: AsyncConnection,
    submissions: Sequence[Submission],
    *,
    visit_timeout: timedelta,
    store_bots: bool,
    hooks: Sequence[LeadEventHook] = (),
) -> None:
    """Store every submission's events in the caller's transaction, filling in outcomes."""
    now = utcnow()
    fresh: list[tuple[Submission, int, IngestEvent]] = []
    seen: set[tuple[uuid.UUID, str]] = set()
    for sub in submissions:
        sub.outcomes = [ACCEPTED] * len(sub.events)
        for i, event in enumerate(sub.events):
            key = (sub.site_id, event.message_id)
            if key in seen:
                sub.outcomes[i] = DUPLICATE
                continue
            seen.add(key)
            if event.is_bot:
                sub.outcomes[i] = BOT
            fresh.append((sub, i, event))

    identities = _Identities()
    keys: set[tuple[uuid.UUID, str, str]] = set()
    for sub, _, event in fresh:
        if not event.is_bot:
            for kind, value in (
                ("user", event.user_id),
                ("anonymous", event.anonymous_id),
                ("user", event.previous_id),
                ("anonymous", event.previous_id),
            ):
                if value:
                    keys.add((sub.site_id, kind, value))
    await identities.load(conn, keys)
    for sub, _, event in fresh:
        if not event.is_bot:
            event.lead_id = identities.resolve(sub.site_id, event)
    for _, _, event in fresh:
        if event.lead_id is not None:
            event.lead_id = identities.find(event.lead_id)

    profiles: dict[uuid.UUID, dict[str, Any]] = {}
    await _lock_existing_leads(conn, identities, profiles)
    await _insert_new_leads(conn, identities, profiles, now)
    await _insert_identities(conn, identities, now)
    await _merge_leads(conn, identities, profiles)

    to_store = [(sub, i, e) for sub, i, e in fresh if store_bots or not e.is_bot]
    inserted = await _insert_events(conn, [(sub.site_id, e) for sub, _, e in to_store])
    for sub, i, event in to_store:
        if (sub.site_id, event.message_id) not in inserted:
            sub.outcomes[i] = DUPLICATE

    new_events = sorted(
        (e for sub, i, e in to_store if sub.outcomes[i] == ACCEPTED and e.lead_id is not None),
        key=lambda e: e.timestamp,
    )
    touched: set[uuid.UUID] = {s for _, s in identities.merges()}
    for event in new_events:
        assert event.lead_id is not None
        profile = profiles[event.lead_id]
        lead_profile.apply_event(profile, event, visit_timeout)
        for hook in hooks:
            hook(profile, event, now)
        touched.add(event.lead_id)
    await _write_profiles(conn, [profiles[lead_id] for lead_id in sorted(touched)], now)


async def _lock_existing_leads(
    conn: AsyncConnection, identities: _Identities, profiles: dict[uuid.UUID, dict[str, Any]]
) -> None:
    ids = sorted(identities.existing)
    table = Lead.__table__
    for start in range(0, len(ids), _CHUNK):
        rows = await conn.execute(
            select(table)
            .where(table.c.id.in_(ids[start : start + _CHUNK]))
            .order_by(table.c.id)
            # FOR NO KEY UPDATE: does not block the FK checks of concurrent event inserts.
            .with_for_update(key_share=True)
        )
        for row in rows.mappings():
            if row["merged_into_id"] is not None:
                # A concurrent group merged this lead after we read its identities.
                raise RetryGroup(f"lead {row['id']} was merged meanwhile")
            profiles[row["id"]] = dict(row)
    missing = set(ids) - profiles.keys()
    if missing:
        raise RetryGroup(f"leads {sorted(missing)[:3]} vanished meanwhile")


async def _insert_new_leads(
    conn: AsyncConnection,
    identities: _Identities,
    profiles: dict[uuid.UUID, dict[str, Any]],
    now: datetime,
) -> None:
    rows = []
    for lead_id, site_id in identities.new_leads.items():
        if identities.find(lead_id) == lead_id:  # not merged away within this group
            profiles[lead_id] = lead_profile.new_profile(lead_id, site_id, now)
            rows.append(profiles[lead_id])
    if rows:
        await conn.execute(insert(Lead.__table__), rows)


async def _insert_identities(conn: AsyncConnection, identities: _Identities, now: datetime) -> None:
    table = LeadIdentity.__table__
    rows = [
        {
            "site_id": s,
            "kind": k,
            "value": v,
            "lead_id": identities.find(identities.known[(s, k, v)]),
            "created_at": now,
        }
        for s, k, v in sorted(identities.new_identities)
    ]
    if not rows:
        return
    stmt = (
        _insert(conn, table)
        .on_conflict_do_nothing(index_elements=["site_id", "kind", "value"])
        .returning(table.c.id)
    )
    created = (await conn.execute(stmt, rows)).all()
    if len(created) != len(rows):
        raise RetryGroup("an identity was created concurrently")


async def _merge_leads(
    conn: AsyncConnection, identities: _Identities, profiles: dict[uuid.UUID, dict[str, Any]]
) -> None:
    leads, idents, events = Lead.__table__, LeadIdentity.__table__, Event.__table__
    for loser, survivor in identities.merges():
        await conn.execute(update(idents).where(idents.c.lead_id == loser).values(lead_id=survivor))
        await conn.execute(update(events).where(events.c.lead_id == loser).values(lead_id=survivor))
        await conn.execute(
            update(leads)
            .where((leads.c.merged_into_id == loser) | (leads.c.id == loser))
            .values(merged_into_id=survivor)
        )
        lead_profile.merge_profiles(profiles[survivor], profiles[loser])


async def _insert_events(
    conn: AsyncConnection, events: list[tuple[uuid.UUID, IngestEvent]]
) -> set[tuple[uuid.UUID, str]]:
    table = Event.__table__
    inserted: set[tuple[uuid.UUID, str]] = set()
    rows = [
        {
            "site_id": site_id,
            "message_id": e.message_id,
            "lead_id": e.lead_id,
            "type": e.type,
            "name": e.name,
            "anonymous_id": e.anonymous_id,
            "user_id": e.user_id,
            "previous_id": e.previous_id,
            "timestamp": e.timestamp,
            "original_timestamp": e.original_timestamp,
            "sent_at": e.sent_at,
            "received_at": e.received_at,
            "is_bot": e.is_bot,
            "properties": e.properties,
            "traits": e.traits,
            "context": e.context,
        }
        for site_id, e in events
    ]
    if not rows:
        return inserted
    # executemany: SQLAlchemy batches it into multi-row INSERTs ("insertmanyvalues") with one
    # cached statement, and still returns the rows that were actually inserted.
    stmt = (
        _insert(conn, table)
        .on_conflict_do_nothing(index_elements=["site_id", "message_id"])
        .returning(table.c.site_id, table.c.message_id)
    )
    result = await conn.execute(stmt, rows)
    inserted.update((site_id, message_id) for site_id, message_id in result)
    return inserted


async def _write_profiles(
    conn: AsyncConnection, profiles: list[dict[str, Any]], now: datetime
) -> None:
    if not profiles:
        return
    table = Lead.__table__
    stmt = (
        update(table)
        .where(table.c.id == bindparam("_id"))
        .values({c: bindparam(c) for c in _UPDATABLE})
    )
    params = []
    for p in profiles:
        p["updated_at"] = now
        params.append({"_id": p["id"], **{c: p[c] for c in _UPDATABLE}})
    await conn.execute(stmt, params)
