"""The set-based statements of a group transaction, for each database.

PostgreSQL gets one statement per step whatever the number of rows: the rows travel as
arrays and `unnest` turns them back into a table, so the SQL text never changes, asyncpg
prepares it once, and PostgreSQL plans it once. SQLite (embedded, no round trips) uses plain
SQLAlchemy Core executemany.
"""

import uuid
from typing import Any, Protocol

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
    raise TypeError(f"no array type for {column}")


def _unnest(table: Table, columns: tuple[str, ...]) -> tuple[str, str]:
    """`unnest($1::uuid[], ...) AS t(a, ...)` and the select list (JSON sent as text)."""
    types = [_pg_type(table.c[name]) for name in columns]
    arrays = ", ".join(
        f"${i}::{'text' if t == 'jsonb' else t}[]" for i, t in enumerate(types, start=1)
    )
    select_list = ", ".join(
        f"t.{name}::jsonb" if t == "jsonb" else f"t.{name}"
        for name, t in zip(columns, types, strict=True)
    )
    return f"unnest({arrays}) AS t({', '.join(columns)})", select_list


def _insert_sql(table: Table, columns: tuple[str, ...], suffix: str = "") -> str:
    source, select_list = _unnest(table, columns)
    names = ", ".join(columns)
    return f"INSERT INTO {table.name} ({names}) SELECT {select_list} FROM {source} {suffix}"


_leads, _events, _identities = Lead.__table__, Event.__table__, LeadIdentity.__table__
_LEAD_JSON = {c for c in LEAD_COLUMNS if isinstance(_leads.c[c].type, JSON)}
_EVENT_JSON = {c for c in EVENT_COLUMNS if isinstance(_events.c[c].type, JSON)}

_PG_FIND_IDENTITIES = (
    "SELECT i.site_id, i.kind, i.value, i.lead_id FROM lead_identities i "
    "JOIN unnest($1::uuid[], $2::text[], $3::text[]) AS k(site_id, kind, value) "
    "ON i.site_id = k.site_id AND i.kind = k.kind AND i.value = k.value"
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
_update_source, _update_list = _unnest(_leads, ("id", *LEAD_UPDATABLE))
_PG_UPDATE_LEADS = (
    "UPDATE leads AS l SET "
    + ", ".join(
        f"{c} = {expr}"
        for c, expr in zip(LEAD_UPDATABLE, _update_list.split(", ")[1:], strict=True)
    )
    + f" FROM {_update_source} WHERE l.id = t.id"
)


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _arrays(
    rows: list[dict[str, Any]], columns: tuple[str, ...], json_columns: set[str]
) -> tuple[list[Any], ...]:
    return tuple(
        [_dumps(r[c]) for r in rows] if c in json_columns else [r[c] for r in rows] for c in columns
    )


def _uuid(value: Any) -> uuid.UUID:
    return value if type(value) is uuid.UUID else uuid.UUID(str(value))


class PostgresBulk:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        result = await self.conn.exec_driver_sql(sql, params)
        return list(result.all())

    async def find_identities(self, keys: list[IdentityKey]) -> list[tuple[IdentityKey, uuid.UUID]]:
        if not keys:
            return []
        rows = await self._fetch(
            _PG_FIND_IDENTITIES, ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])
        )
        return [((_uuid(s), k, v), _uuid(lead)) for s, k, v, lead in rows]

    async def lock_leads(self, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
        if not ids:
            return []
        rows = await self._fetch(_PG_LOCK_LEADS, (ids,))
        leads = []
        for row in rows:
            lead = dict(zip(LEAD_COLUMNS, row, strict=True))
            for key in ("id", "site_id", "merged_into_id"):
                if lead[key] is not None:
                    lead[key] = _uuid(lead[key])
            leads.append(lead)
        return leads

    async def insert_leads(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.conn.exec_driver_sql(
                _PG_INSERT_LEADS, _arrays(rows, LEAD_COLUMNS, _LEAD_JSON)
            )

    async def insert_identities(self, rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        return len(await self._fetch(_PG_INSERT_IDENTITIES, _arrays(rows, IDENTITY_COLUMNS, set())))

    async def insert_events(self, rows: list[dict[str, Any]]) -> set[tuple[uuid.UUID, str]]:
        if not rows:
            return set()
        result = await self._fetch(_PG_INSERT_EVENTS, _arrays(rows, EVENT_COLUMNS, _EVENT_JSON))
        return {(_uuid(site_id), message_id) for site_id, message_id in result}

    async def update_leads(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.conn.exec_driver_sql(
                _PG_UPDATE_LEADS, _arrays(rows, ("id", *LEAD_UPDATABLE), _LEAD_JSON)
            )


# --- SQLite (and any other SQLAlchemy database) ------------------------------------------


class CoreBulk:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def find_identities(self, keys: list[IdentityKey]) -> list[tuple[IdentityKey, uuid.UUID]]:
        t = _identities
        found = []
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
        leads = []
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
