"""The set-based statements of a group transaction, for each database.

PostgreSQL gets one statement per step whatever the number of rows: the rows travel as
arrays and `unnest` turns them back into a table, so the SQL text never changes, asyncpg
prepares it once, and PostgreSQL plans it once. SQLite (embedded, no round trips) uses plain
SQLAlchemy Core executemany.
"""

import uuid
from typing import Any, Protocol, cast

import orjson
from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    Integer,
    String,
    Uuid,
    bindparam,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.schema import Table

from app.db import UTCDateTime
from app.leads.models import Event, Lead, LeadIdentity
from app.sites.models import Site  # noqa: F401  (foreign keys take their type from it)

IdentityKey = tuple[uuid.UUID, str, str]
_CHUNK = 500  # rows per SQLite statement, well under its parameter limit

LEAD_COLUMNS = tuple(c.name for c in Lead.__table__.columns)
LEAD_UPDATABLE = tuple(c for c in LEAD_COLUMNS if c not in ("id", "site_id", "created_at"))
EVENT_COLUMNS = tuple(c.name for c in Event.__table__.columns if c.name != "id")
IDENTITY_COLUMNS = ("site_id", "kind", "value", "lead_id", "created_at")


class Bulk(Protocol):
    async def find_identities(
        self, keys: list[IdentityKey]
    ) -> list[tuple[IdentityKey, uuid.UUID]]: ...
    async def lock_leads(self, ids: list[uuid.UUID]) -> list[dict[str, Any]]: ...
    async def insert_leads(self, rows: list[dict[str, Any]]) -> None: ...
    async def insert_identities(self, rows: list[dict[str, Any]]) -> int: ...
    async def insert_events(self, rows: list[dict[str, Any]]) -> set[tuple[uuid.UUID, str]]: ...
    async def update_leads(self, rows: list[dict[str, Any]]) -> None: ...


def bulk_for(conn: AsyncConnection) -> Bulk:
    return PostgresBulk(conn) if conn.dialect.name == "postgresql" else CoreBulk(conn)


# --- PostgreSQL ---------------------------------------------------------------------------


def _pg_type(column: Any) -> str:
    t = column.type
    if isinstance(t, UTCDateTime):
        return "timestamptz"
    if isinstance(t, JSON):
        return "jsonb"
    for sa_type, name in (
        (Uuid, "uuid"),
        (Boolean, "bool"),
        (Float, "float8"),
        (Integer, "int8"),
        (String, "text"),
    ):
        if isinstance(t, sa_type):
            return name
    raise TypeError(f"no PostgreSQL type for {column}")


def _recordset(table: Table, columns: tuple[str, ...]) -> str:
    """`json_to_recordset($1::json) AS t(a uuid, ...)`: the rows arrive as one JSON document,
    which orjson writes and PostgreSQL reads far faster than per-value parameter encoding."""
    defs = ", ".join(f"{name} {_pg_type(table.c[name])}" for name in columns)
    return f"json_to_recordset($1::json) AS t({defs})"


def _insert_sql(table: Table, columns: tuple[str, ...], suffix: str = "") -> str:
    names = ", ".join(columns)
    source = _recordset(table, columns)
    return f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {source} {suffix}"


_leads = cast(Table, Lead.__table__)
_events = cast(Table, Event.__table__)
_identities = cast(Table, LeadIdentity.__table__)

_PG_FIND_IDENTITIES = (
    "SELECT i.site_id, i.kind, i.value, i.lead_id FROM lead_identities i "
    f"JOIN {_recordset(_identities, ('site_id', 'kind', 'value'))} "
    "ON i.site_id = t.site_id AND i.kind = t.kind AND i.value = t.value"
)
# FOR NO KEY UPDATE: does not block the foreign-key checks of concurrent event inserts.
_PG_LOCK_LEADS = (
    f"SELECT {', '.join(LEAD_COLUMNS)} FROM leads WHERE id = ANY($1::uuid[]) "
    "ORDER BY id FOR NO KEY UPDATE"
)
_PG_INSERT_LEADS = _insert_sql(_leads, LEAD_COLUMNS)
_PG_INSERT_IDENTITIES = _insert_sql(
    _identities, IDENTITY_COLUMNS, "ON CONFLICT (site_id, kind, value) DO NOTHING RETURNING id"
)
_PG_INSERT_EVENTS = _insert_sql(
    _events,
    EVENT_COLUMNS,
    "ON CONFLICT (site_id, message_id) DO NOTHING RETURNING site_id, message_id",
)
_PG_UPDATE_LEADS = (
    "UPDATE leads AS l SET "
    + ", ".join(f"{c} = t.{c}" for c in LEAD_UPDATABLE)
    + f" FROM {_recordset(_leads, ('id', *LEAD_UPDATABLE))} WHERE l.id = t.id"
)


def _json(rows: Any) -> str:
    # default=str: asyncpg's own UUID type, which orjson does not know, is written as text.
    return orjson.dumps(rows, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


def _uuid(value: Any) -> uuid.UUID:
    return value if type(value) is uuid.UUID else uuid.UUID(str(value))


class PostgresBulk:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def _fetch(self, sql: str, param: Any) -> list[Any]:
        result = await self.conn.exec_driver_sql(sql, (param,))
        return list(result.all())

    async def find_identities(self, keys: list[IdentityKey]) -> list[tuple[IdentityKey, uuid.UUID]]:
        if not keys:
            return []
        doc = _json([{"site_id": s, "kind": k, "value": v} for s, k, v in keys])
        rows = await self._fetch(_PG_FIND_IDENTITIES, doc)
        return [((_uuid(s), k, v), _uuid(lead)) for s, k, v, lead in rows]

    async def lock_leads(self, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        if not ids:
            return []
        leads = []
        for row in await self._fetch(_PG_LOCK_LEADS, ids):
            lead = dict(zip(LEAD_COLUMNS, row, strict=True))
            for key in ("id", "site_id", "merged_into_id"):
                if lead[key] is not None:
                    lead[key] = _uuid(lead[key])
            leads.append(lead)
        return leads

    async def insert_leads(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.conn.exec_driver_sql(_PG_INSERT_LEADS, (_json(rows),))

    async def insert_identities(self, rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        return len(await self._fetch(_PG_INSERT_IDENTITIES, _json(rows)))

    async def insert_events(self, rows: list[dict[str, Any]]) -> set[tuple[uuid.UUID, str]]:
        if not rows:
            return set()
        result = await self._fetch(_PG_INSERT_EVENTS, _json(rows))
        return {(_uuid(site_id), message_id) for site_id, message_id in result}

    async def update_leads(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.conn.exec_driver_sql(_PG_UPDATE_LEADS, (_json(rows),))


# --- SQLite (and any other SQLAlchemy database) ------------------------------------------


class CoreBulk:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def find_identities(self, keys: list[IdentityKey]) -> list[tuple[IdentityKey, uuid.UUID]]:
        t = _identities
        found: list[tuple[IdentityKey, uuid.UUID]] = []
        for start in range(0, len(keys), _CHUNK):
            rows = await self.conn.execute(
                select(t.c.site_id, t.c.kind, t.c.value, t.c.lead_id).where(
                    tuple_(t.c.site_id, t.c.kind, t.c.value).in_(keys[start : start + _CHUNK])
                )
            )
            found.extend(((s, k, v), lead) for s, k, v, lead in rows)
        return found

    async def lock_leads(self, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        # SQLite has one writer at a time: the transaction itself is the lock.
        leads: list[dict[str, Any]] = []
        for start in range(0, len(ids), _CHUNK):
            rows = await self.conn.execute(
                select(_leads).where(_leads.c.id.in_(ids[start : start + _CHUNK]))
            )
            leads.extend(dict(row) for row in rows.mappings())
        return leads

    async def insert_leads(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.conn.execute(insert(_leads), rows)

    async def insert_identities(self, rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        stmt = (
            sqlite.insert(_identities)
            .on_conflict_do_nothing(index_elements=["site_id", "kind", "value"])
            .returning(_identities.c.id)
        )
        return len((await self.conn.execute(stmt, rows)).all())

    async def insert_events(self, rows: list[dict[str, Any]]) -> set[tuple[uuid.UUID, str]]:
        if not rows:
            return set()
        stmt = (
            sqlite.insert(_events)
            .on_conflict_do_nothing(index_elements=["site_id", "message_id"])
            .returning(_events.c.site_id, _events.c.message_id)
        )
        return {(s, m) for s, m in await self.conn.execute(stmt, rows)}

    async def update_leads(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        stmt = (
            update(_leads)
            .where(_leads.c.id == bindparam("_id"))
            .values({c: bindparam(c) for c in LEAD_UPDATABLE})
        )
        await self.conn.execute(
            stmt, [{"_id": r["id"], **{c: r[c] for c in LEAD_UPDATABLE}} for r in rows]
        )
