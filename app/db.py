"""Database engine, sessions and the column types shared by every domain's models."""

import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
import orjson
from fastapi import Depends, Request
from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from app.config import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# JSON that is JSONB on PostgreSQL.
JSONType = JSON().with_variant(JSONB(), "postgresql")
# A 64-bit key; on SQLite an INTEGER, the only type it auto-increments as a primary key.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp that always comes back as UTC, on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        # SQLite has no time zones: store naive UTC so that text comparison orders correctly.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def make_engine(settings: Settings) -> AsyncEngine:
    """Create the engine: SQLite in WAL mode with durable commits, or PostgreSQL via asyncpg."""
    kwargs: dict[str, Any] = {
        "echo": settings.database_echo,
        "json_serializer": _json_dumps,
        "json_deserializer": orjson.loads,
    }
    if settings.is_sqlite:
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_size"] = settings.database_pool_size
        kwargs["max_overflow"] = settings.database_pool_size
        # A pooled connection the server dropped (restart, failover) is replaced at checkout
        # instead of failing a request, for the price of a ping at each checkout.
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(settings.database_url, **kwargs)
    if settings.is_sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def _sqlite_begin(conn: Any) -> None:
    # Python's sqlite3 only opens a transaction at the first write, so the reads before it
    # would see no snapshot and two writers could lose each other's updates. We open it
    # ourselves; writers (`writer(engine)`) take the write lock up front, so a read-then-write
    # queues behind other writers (busy_timeout) instead of failing or going stale.
    options = conn.get_execution_options()
    if options.get("isolation_level") == "AUTOCOMMIT":
        return
    conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("sqlite_immediate") else "BEGIN")


def writer(engine: AsyncEngine) -> AsyncEngine:
    """The engine for transactions that read then write (no effect on PostgreSQL, whose row
    locks do this job)."""
    return engine.execution_options(sqlite_immediate=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _sqlite_begin)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged event survives a power cut
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request: committed once on success, rolled back on error. Requests
    that may write get a writer session (see `writer`)."""
    state = request.app.state
    sessionmaker: async_sessionmaker[AsyncSession] = (
        state.sessionmaker if request.method in READ_METHODS else state.write_sessionmaker
    )
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            # Also after a failed COMMIT: SQLite keeps the transaction (and its write lock)
            # open then, and the pool would take the connection back as it is.
            await session.rollback()
            raise


# scope="function": the commit above runs when the endpoint returns, before the response is
# sent, so a commit that fails is the answer (a 500 or 503) instead of a 2xx for a change the
# database never kept. (The default, "request", commits after the response has gone out.)
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


# PostgreSQL states that mean "not now" rather than "wrong": the server is starting up, shutting
# down or crashed (57P01-57P03), or out of connection slots (53300). Class 08 is the connection.
UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
UNAVAILABLE_SQLITE_MESSAGES = (
    "database is locked",
    "database table is locked",
    "unable to open database file",
)


def database_unavailable(exc: BaseException) -> bool:
    """Whether an error means the database cannot be reached or cannot serve now (503, try
    again later), as opposed to a failed statement (500). Looks through SQLAlchemy's wrapper
    and the exception's causes."""
    return any(_unavailable_one(error) for error in _chain(exc))


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error, looked for through SQLAlchemy's wrapper and the
    exception's causes (None when there is none)."""
    for error in _chain(exc):
        state = getattr(error, "sqlstate", None)
        if isinstance(state, str):
            return state
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        orig = getattr(error, "orig", None)
        # SQLAlchemy keeps the driver's error in `orig`, which keeps asyncpg's in __cause__.
        pending += [orig if isinstance(orig, BaseException) else None, error.__cause__]


def _unavailable_one(error: BaseException) -> bool:
    if isinstance(error, OSError | sa_exc.TimeoutError):  # refused, reset, DNS, pool timeout
        return True
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, asyncpg.InterfaceError):
        return "closed" in str(error)  # "connection is closed", "... was closed in the middle"
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str) and (
        sqlstate in UNAVAILABLE_SQLSTATES or sqlstate.startswith("08")
    ):
        return True
    if isinstance(error, sqlite3.OperationalError):
        message = str(error).lower()
        return any(text in message for text in UNAVAILABLE_SQLITE_MESSAGES)
    return False
