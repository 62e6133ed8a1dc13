"""Shared steps of the fault tests."""

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.server import ServerConfig
from tests.helpers import free_port, start_in_thread


@asynccontextmanager
async def failing_commit(
    engine: AsyncEngine, table: str, on: str, when: str = "TRUE"
) -> AsyncIterator[None]:
    """Make COMMIT fail, for real, in any transaction that `on` ("INSERT", "UPDATE") touches
    rows of `table` matching `when`: every statement succeeds, the commit is refused.

    PostgreSQL: a DEFERRABLE INITIALLY DEFERRED constraint trigger that raises (deferred
    triggers run at COMMIT). SQLite has no deferred triggers, but checks DEFERRABLE INITIALLY
    DEFERRED foreign keys at COMMIT: a trigger inserts a row whose foreign key points nowhere.
    """
    name = f"fail_commit_{table}"
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(
                text(
                    "CREATE OR REPLACE FUNCTION fail_commit() RETURNS trigger LANGUAGE plpgsql"
                    " AS $$ BEGIN RAISE EXCEPTION 'commit refused by the test'; END $$"
                )
            )
            await conn.execute(
                text(
                    f"CREATE CONSTRAINT TRIGGER {name} AFTER {on} ON {table}"
                    f" DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN ({when})"
                    " EXECUTE FUNCTION fail_commit()"
                )
            )
        else:
            when = when.replace("TRUE", "1")
            await conn.execute(
                text("CREATE TABLE IF NOT EXISTS fail_commit_parent (id INTEGER PRIMARY KEY)")
            )
            await conn.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS fail_commit_child (parent_id INTEGER"
                    " REFERENCES fail_commit_parent (id) DEFERRABLE INITIALLY DEFERRED)"
                )
            )
            await conn.execute(
                text(
                    f"CREATE TRIGGER {name} AFTER {on} ON {table} WHEN ({when})"
                    " BEGIN INSERT INTO fail_commit_child VALUES (1); END"
                )
            )
    try:
        yield
    finally:
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text(f"DROP TRIGGER {name} ON {table}"))
            else:
                await conn.execute(text(f"DROP TRIGGER {name}"))
                await conn.execute(text("DELETE FROM fail_commit_child"))


def assert_unavailable(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["code"] == "storage_unavailable"
    assert int(r.headers["retry-after"]) > 0


@contextmanager
def served(app: Any, **config: Any) -> Iterator[tuple[str, int]]:
    """The app on a real uvicorn server in a thread, configured the way `leadheat serve` runs
    it (`ServerConfig`: the same protocol class); yields (host, port)."""
    port = free_port()
    server = uvicorn.Server(
        ServerConfig(app, host="127.0.0.1", port=port, log_level="warning", **config)
    )
    thread = start_in_thread(server)
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(timeout=15)
