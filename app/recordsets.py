"""PostgreSQL set-based statements over any table: rows sent as one JSON recordset, or as
binary COPY records (asyncpg), for the group writes of `leads` (app.domain.lead_writes) and
of ingestion's events and identities (app.ingestion.bulk)."""

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import orjson
from sqlalchemy import JSON, Boolean, Float, Integer, String, Uuid
from sqlalchemy.sql.schema import Table

from app.db import UTCDateTime


def pg_type(column: Any) -> str:
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


def recordset(table: Table, columns: tuple[str, ...], param: int = 1) -> str:
    """`jsonb_to_recordset($1::jsonb) AS t(a uuid, ...)`: the rows arrive as one JSON document,
    which orjson writes and PostgreSQL reads far faster than per-value parameter encoding.
    jsonb, not json: json_to_recordset hands each JSON column to the column type's input
    function as text, parsed a second time; from jsonb, a JSON column's value is taken as it
    is."""
    defs = ", ".join(f"{name} {pg_type(table.c[name])}" for name in columns)
    return f"jsonb_to_recordset(${param}::jsonb) AS t({defs})"


def insert_sql(table: Table, columns: tuple[str, ...], suffix: str = "", param: int = 1) -> str:
    names = ", ".join(columns)
    source = recordset(table, columns, param)
    return f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {source} {suffix}"


def json_columns(table: Table) -> frozenset[str]:
    return frozenset(c.name for c in table.columns if isinstance(c.type, JSON))


def to_json(rows: Any) -> str:
    # default=str: asyncpg's own UUID type, which orjson does not know, is written as text.
    return orjson.dumps(rows, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


def as_uuid(value: Any) -> uuid.UUID:
    return value if type(value) is uuid.UUID else uuid.UUID(str(value))


def copy_records(
    rows: Sequence[Mapping[str, Any]], columns: tuple[str, ...], json_columns: frozenset[str]
) -> list[tuple[Any, ...]]:
    # JSON goes as text: the connection's jsonb codec (SQLAlchemy's) takes serialized JSON.
    dumps, opt = orjson.dumps, orjson.OPT_NON_STR_KEYS
    json_at = [i for i, c in enumerate(columns) if c in json_columns]
    records = []
    for row in rows:
        values = [row[c] for c in columns]
        for i in json_at:
            if values[i] is not None:
                values[i] = dumps(values[i], option=opt, default=str).decode()
        records.append(tuple(values))
    return records


async def copy_rows(
    raw: asyncpg.Connection,
    table: str,
    rows: Sequence[Mapping[str, Any]],
    columns: tuple[str, ...],
    json_columns: frozenset[str],
) -> None:
    """Binary COPY of the rows into `table` (no JSON for the server to parse)."""
    records = copy_records(rows, columns, json_columns)
    await raw.copy_records_to_table(table, records=records, columns=columns)
