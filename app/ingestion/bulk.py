"""The set-based statements of a group transaction, for each database.

PostgreSQL gets a fixed number of statements per group, whatever the number of rows, and
never a new SQL text (asyncpg prepares each once), in asyncpg's own transaction
(`group_transaction`), sent to asyncpg without SQLAlchemy's per-statement overhead:
- one lookup for the group's identities (their leads, locked in id order) and the events
  already stored;
- every write in one statement (`_PG_WRITE`: new leads, identities, events and lead updates,
  each a JSON recordset; one round trip instead of four), except that many new leads or
  events go first by binary COPY (no JSON for the server to parse; COPY's set-up is not worth
  it for a few rows). Duplicates were found by the lookup; an event
  another transaction stored meanwhile makes the insert fail on the unique index, and the
  whole group is retried (RetryGroup), finding it then as a duplicate.
SQLite (embedded, no round trips) uses plain SQLAlchemy Core executemany.
"""

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import asyncpg
from sqlalchemy import select, tuple_
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.schema import Table

from app.domain import lead_writes
from app.domain.lead_rows import LeadRow, lead_row
from app.domain.lead_writes import LEAD_COLUMNS
from app.domain.privacy import PrivacySalt, Suppression, identifier_hash
from app.domain.tables import Event, Lead, LeadIdentity
from app.recordsets import as_uuid, copy_rows, insert_sql, json_columns, pg_type, recordset, to_json
from app.sites.models import Site  # noqa: F401  (foreign keys take their type from it)

IdentityKey = tuple[uuid.UUID, str, str]
_CHUNK = 500  # rows per SQLite statement, well under its parameter limit

EVENT_COLUMNS = tuple(c.name for c in Event.__table__.columns if c.name != "id")
IDENTITY_COLUMNS = ("site_id", "kind", "value", "lead_id", "created_at")


EventKey = tuple[uuid.UUID, str]  # (site id, message id)


@dataclass(slots=True)
class Found:
    identities: list[tuple[IdentityKey, uuid.UUID]]  # known identity -> its lead
    events: set[EventKey]  # already stored
    leads: list[LeadRow]  # the rows of the identities' leads, locked, in id order
    # The keys (identities and emails) that match a suppression (app.domain.privacy).
    suppressed: set[IdentityKey] = field(default_factory=set)


class RetryGroup(Exception):
    """Another transaction changed identities or stored an event under us; the whole group is
    tried again (it then sees what the other transaction did)."""


class Bulk(Protocol):
    async def lookup(self, identity_keys: list[IdentityKey], event_keys: list[EventKey]) -> Found:
        """The leads of the identities already known (locked for the transaction, in id
        order), the events already stored, and which keys are suppressed. `identity_keys`
        may hold `email` keys, only looked up as suppressions."""
        ...

    async def write(
        self,
        *,
        leads: list[LeadRow],
        identities: list[dict[str, Any]],
        events: list[dict[str, Any]],
        updates: list[LeadRow],
    ) -> int:
        """Insert the new leads, identities and events, and update the changed leads; returns
        how many identities were new (fewer than given: another transaction created one).
        Raises RetryGroup if one of the events was stored concurrently."""
        ...


async def prepare_flusher(conn: AsyncConnection) -> None:
    """Set up a connection that stores groups over and over (see `group_transaction`).

    On PostgreSQL: each of the few statements is planned once (a generic plan) instead of at
    every execution, as PostgreSQL does by default for the lookup (costly with its array and
    JSON parameters; the plans are index probes whatever the parameters, see _PG_LOOKUP);
    and SQLAlchemy is put in autocommit mode, because the group's transaction is
    asyncpg's own."""
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        await conn.commit()
        await conn.execution_options(isolation_level="AUTOCOMMIT")


@contextlib.asynccontextmanager
async def group_transaction(conn: AsyncConnection) -> AsyncIterator[None]:
    """One group's transaction, on a connection set up by `prepare_flusher`.

    On PostgreSQL it is asyncpg's transaction, begun at once: the group's own statements go
    to asyncpg directly, the lookup included (SQLAlchemy begins its transaction at its first
    statement, so the lookup would go through it and pay for building its wide result's
    metadata). SQLAlchemy, in autocommit mode, sends its
    statements (merges, the webhook outbox, rule sets) into the same transaction.
    """
    if conn.dialect.name != "postgresql":
        async with conn.begin():
            yield
        return
    raw = (await conn.get_raw_connection()).driver_connection
    if raw is None:
        raise RuntimeError("no asyncpg connection under this one")
    try:
        async with raw.transaction():
            yield
    finally:
        if conn.in_transaction():  # SQLAlchemy's own bookkeeping: nothing is sent
            with contextlib.suppress(Exception):
                await conn.commit()


def bulk_for(conn: AsyncConnection) -> Bulk:
    return PostgresBulk(conn) if conn.dialect.name == "postgresql" else CoreBulk(conn)


# --- PostgreSQL ---------------------------------------------------------------------------


_leads = cast(Table, Lead.__table__)
_events = cast(Table, Event.__table__)
_identities = cast(Table, LeadIdentity.__table__)
_salts = cast(Table, PrivacySalt.__table__)
_suppressions = cast(Table, Suppression.__table__)

# The group's first statement: the known identities with their leads, locked, and the events
# already stored, as one result (rows told apart by which columns are null; one round trip
# fewer than a lookup and a lock). Identities and events are an index probe per row whatever
# the planner's statistics say: LATERAL with LIMIT 1 cannot be flattened into a join (the keys
# are unique anyway); as plain joins, young tables' stale statistics gave hash joins over whole
# tables; so did `id IN (SELECT ...)` for the leads (an = ANY(array) is a probe
# of the primary key). The leads are locked in id order, so that replicas never deadlock;
# FOR NO KEY UPDATE does not block the foreign-key checks of concurrent inserts.
_NO_LEAD = ", ".join(f"NULL::{pg_type(_leads.c[c])}" for c in LEAD_COLUMNS)
_PG_LOOKUP = (
    f"WITH keys AS (SELECT site_id, kind, value FROM "
    f"{recordset(_identities, ('site_id', 'kind', 'value'))}), "
    "known AS (SELECT t.site_id, t.kind, t.value, i.lead_id FROM keys t "
    "CROSS JOIN LATERAL (SELECT lead_id FROM lead_identities i "
    "WHERE i.site_id = t.site_id AND i.kind = t.kind AND i.value = t.value LIMIT 1) i "
    "WHERE t.kind <> 'email'), "
    f"locked AS (SELECT {', '.join(LEAD_COLUMNS)} FROM leads "
    "WHERE id = ANY(ARRAY(SELECT lead_id FROM known)) ORDER BY id FOR NO KEY UPDATE) "
    f"SELECT site_id, kind, value, lead_id, {_NO_LEAD} FROM known "
    "UNION ALL "
    f"SELECT e.site_id, NULL, e.message_id, NULL, {_NO_LEAD} "
    "FROM unnest($2::uuid[], $3::text[]) AS t(site_id, message_id) "
    "CROSS JOIN LATERAL (SELECT site_id, message_id FROM events e "
    "WHERE e.site_id = t.site_id AND e.message_id = t.message_id LIMIT 1) e "
    "UNION ALL "
    f"SELECT NULL, NULL, NULL, NULL, * FROM locked "
    # Suppressed keys (a site without a salt, that never erased anyone, has none): hashed as
    # app.domain.privacy.identifier_hash does, and a probe of the unique index per key of a
    # site with a salt (LATERAL ... LIMIT 1, as above: never a scan of the suppressions).
    "UNION ALL "
    f"SELECT t.site_id, t.kind, t.value, NULL, {_NO_LEAD} FROM keys t "
    "JOIN privacy_salts s ON s.site_id = t.site_id "
    "CROSS JOIN LATERAL (SELECT 1 FROM suppressions p WHERE p.site_id = t.site_id AND p.hash = "
    "encode(sha256(s.salt || convert_to(t.kind || ':' || t.value, 'UTF8')), 'hex') LIMIT 1) p"
)
# Small groups (single events under load) write everything in one statement: COPY takes two
# round trips and asyncpg's copy_records_to_table has a fixed Python cost per call.
COPY_MIN_ROWS = 50
# The group's writes as one statement (one round trip), its `leads` parts written by the
# table's owner (app.domain.lead_writes): data-modifying CTEs all run to completion; the
# identities' foreign keys are checked at its end, when the new leads exist.
# Rows sent by COPY instead come as empty arrays.
_PG_WRITE = (
    f"WITH new_leads AS ({lead_writes.pg_insert_sql(1)}), "
    f"new_events AS ({insert_sql(_events, EVENT_COLUMNS, param=3)}), "
    f"changed AS ({lead_writes.pg_update_sql(4)}), "
    "new_identities AS ("
    + insert_sql(
        _identities,
        IDENTITY_COLUMNS,
        "ON CONFLICT (site_id, kind, value) DO NOTHING RETURNING 1",
        param=2,
    )
    + ") SELECT count(*) FROM new_identities"
)
_EVENT_JSON = json_columns(_events)


class PostgresBulk:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self._driver: asyncpg.Connection | None = None

    async def _raw(self) -> asyncpg.Connection:
        """The asyncpg connection under SQLAlchemy's, inside the transaction it opened."""
        if self._driver is None:
            raw = await self.conn.get_raw_connection()
            driver = raw.driver_connection
            if driver is None or not driver.is_in_transaction():
                raise RuntimeError("the group's transaction is not open (group_transaction)")
            self._driver = driver
        return self._driver

    async def lookup(self, identity_keys: list[IdentityKey], event_keys: list[EventKey]) -> Found:
        doc = to_json([{"site_id": s, "kind": k, "value": v} for s, k, v in identity_keys])
        params = (doc, [site for site, _ in event_keys], [message for _, message in event_keys])
        found = Found([], set(), [])
        rows = await (await self._raw()).fetch(_PG_LOOKUP, *params)
        for row in rows:
            site_id, kind, value, lead_id = row[:4]
            if site_id is None:
                lead = lead_row(zip(LEAD_COLUMNS, row[4:], strict=True))
                lead["id"], lead["site_id"] = as_uuid(lead["id"]), as_uuid(lead["site_id"])
                if lead["merged_into_id"] is not None:
                    lead["merged_into_id"] = as_uuid(lead["merged_into_id"])
                found.leads.append(lead)
            elif kind is None:
                found.events.add((as_uuid(site_id), value))
            elif lead_id is None:
                found.suppressed.add((as_uuid(site_id), kind, value))
            else:
                found.identities.append(((as_uuid(site_id), kind, value), as_uuid(lead_id)))
        return found

    async def write(
        self,
        *,
        leads: list[LeadRow],
        identities: list[dict[str, Any]],
        events: list[dict[str, Any]],
        updates: list[LeadRow],
    ) -> int:
        if not (leads or identities or events or updates):
            return 0
        raw = await self._raw()
        try:
            # Many rows go by binary COPY first (no JSON for the server to parse); new leads
            # before the statement below, whose identities refer to them.
            if len(leads) >= COPY_MIN_ROWS:
                await lead_writes.pg_copy_new(raw, leads)
                leads = []
            if len(events) >= COPY_MIN_ROWS:
                await copy_rows(raw, "events", events, EVENT_COLUMNS, _EVENT_JSON)
                events = []
            docs = (to_json(leads), to_json(identities), to_json(events), to_json(updates))
            return int(await raw.fetchval(_PG_WRITE, *docs))
        except asyncpg.UniqueViolationError as exc:
            # Only events can collide: identities are inserted ON CONFLICT DO NOTHING.
            raise RetryGroup("an event was stored concurrently") from exc


# --- SQLite (and any other SQLAlchemy database) ------------------------------------------


class CoreBulk:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def lookup(self, identity_keys: list[IdentityKey], event_keys: list[EventKey]) -> Found:
        t = _identities
        found: list[tuple[IdentityKey, uuid.UUID]] = []
        ids = [key for key in identity_keys if key[1] != "email"]
        for start in range(0, len(ids), _CHUNK):
            rows = await self.conn.execute(
                select(t.c.site_id, t.c.kind, t.c.value, t.c.lead_id).where(
                    tuple_(t.c.site_id, t.c.kind, t.c.value).in_(ids[start : start + _CHUNK])
                )
            )
            found.extend(((s, k, v), lead) for s, k, v, lead in rows)
        e = _events
        stored: set[EventKey] = set()
        for start in range(0, len(event_keys), _CHUNK):
            known = await self.conn.execute(
                select(e.c.site_id, e.c.message_id).where(
                    tuple_(e.c.site_id, e.c.message_id).in_(event_keys[start : start + _CHUNK])
                )
            )
            stored.update((s, m) for s, m in known)
        leads = await self._leads(sorted({lead for _, lead in found}))
        return Found(found, stored, leads, await self._suppressed(identity_keys))

    async def _suppressed(self, keys: list[IdentityKey]) -> set[IdentityKey]:
        sites = sorted({site for site, _, _ in keys})
        if not sites:
            return set()
        salt_rows = await self.conn.execute(
            select(_salts.c.site_id, _salts.c.salt).where(_salts.c.site_id.in_(sites))
        )
        salts = {site: bytes(salt) for site, salt in salt_rows}
        hashed = {
            (site, identifier_hash(salts[site], kind, value)): (site, kind, value)
            for site, kind, value in keys
            if site in salts
        }
        suppressed: set[IdentityKey] = set()
        pairs = sorted(hashed)
        for start in range(0, len(pairs), _CHUNK):
            rows = await self.conn.execute(
                select(_suppressions.c.site_id, _suppressions.c.hash).where(
                    tuple_(_suppressions.c.site_id, _suppressions.c.hash).in_(
                        pairs[start : start + _CHUNK]
                    )
                )
            )
            suppressed.update(hashed[(site, digest)] for site, digest in rows)
        return suppressed

    async def _leads(self, ids: list[uuid.UUID]) -> list[LeadRow]:
        # SQLite has one writer at a time: the transaction itself is the lock.
        leads: list[LeadRow] = []
        for start in range(0, len(ids), _CHUNK):
            rows = await self.conn.execute(
                select(_leads).where(_leads.c.id.in_(ids[start : start + _CHUNK]))
            )
            leads.extend(lead_row(row) for row in rows.mappings())
        return leads

    async def write(
        self,
        *,
        leads: list[LeadRow],
        identities: list[dict[str, Any]],
        events: list[dict[str, Any]],
        updates: list[LeadRow],
    ) -> int:
        # No round trips to save here: one plain statement per kind of row.
        await lead_writes.insert_new(self.conn, leads)
        inserted = await self._insert_new(_identities, ["site_id", "kind", "value"], identities)
        # One writer at a time (BEGIN IMMEDIATE): nothing can be stored between the lookup and
        # here; checked all the same, as on PostgreSQL.
        if await self._insert_new(_events, ["site_id", "message_id"], events) != len(events):
            raise RetryGroup("an event was stored concurrently")
        await lead_writes.update_profiles(self.conn, updates)
        return inserted

    async def _insert_new(self, table: Table, key: list[str], rows: list[dict[str, Any]]) -> int:
        """Insert the rows whose `key` is not taken yet; returns how many were."""
        if not rows:
            return 0
        stmt = sqlite.insert(table).on_conflict_do_nothing(index_elements=key)
        return len((await self.conn.execute(stmt.returning(table.c.id), rows)).all())
