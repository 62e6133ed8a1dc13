"""The migrations make the schema the models describe, on SQLite and on PostgreSQL: a fresh
database upgraded to head has nothing for alembic's autogenerate to add, drop or alter."""

import asyncio
from collections.abc import Iterator
from pathlib import Path
from pprint import pformat
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import DefaultClause, String
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeEngine

from app.config import Settings
from app.db import make_engine
from app.migrate import upgrade
from app.models import metadata
from tests.conftest import DATABASES, new_database


@pytest.fixture(params=DATABASES)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with new_database(request.param, tmp_path) as url:
        yield url


def _compare_type(
    context: MigrationContext,
    inspected_column: Any,
    metadata_column: Any,
    inspected_type: TypeEngine[Any],
    metadata_type: TypeEngine[Any],
) -> bool | None:
    """Alembic's own comparison, except string lengths on SQLite: it stores VARCHAR(n) and
    TEXT alike and enforces no length, and changing a column's type there means copying the
    table (the webhook secret columns keep their old VARCHAR(100) for that reason, see
    migration 0005)."""
    if (
        context.dialect.name == "sqlite"
        and isinstance(inspected_type, String)
        and isinstance(metadata_type, String)
    ):
        return False
    return None


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": _compare_type,
            # Server defaults are compared too: the models declare the ones the migrations
            # set, and a default missing on one side is a real difference for raw inserts.
            "compare_server_default": True,
        },
    )
    return list(compare_metadata(context, metadata))


def _readable(item: Any) -> Any:
    """A difference with its server defaults spelled out (their repr shows none of the SQL)."""
    if isinstance(item, list | tuple):
        return type(item)(_readable(part) for part in item)
    if isinstance(item, DefaultClause):
        return f"server default {getattr(item.arg, 'text', item.arg)}"
    return item


async def _schema_differences(database_url: str) -> list[Any]:
    engine = make_engine(Settings(database_url=database_url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_differences)
    finally:
        await engine.dispose()


def test_the_migrations_make_the_models_schema(empty_database_url: str) -> None:
    upgrade(empty_database_url)  # the service's own path: `leadheat migrate`
    differences = asyncio.run(_schema_differences(empty_database_url))
    assert differences == [], "models and migrations differ:\n" + pformat(_readable(differences))
