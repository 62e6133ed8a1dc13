"""Alembic environment: async engine, batch mode on SQLite, one migrator at a time on PostgreSQL."""

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from app.config import Settings
from app.db import make_engine
from app.models import metadata

# Any number of replicas may start at once: only one runs migrations, the others wait.
MIGRATION_LOCK_ID = 7_362_001


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    # A session lock, not a transaction's: a migration that builds indexes CONCURRENTLY commits
    # mid-way (an autocommit block), and the lock must outlast that.
    postgresql = connection.dialect.name == "postgresql"
    if postgresql:
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()
    try:
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if postgresql:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
            connection.commit()


async def _run_async(url: str) -> None:
    engine = make_engine(Settings(database_url=url))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def _url() -> str:
    url = context.config.get_main_option("sqlalchemy.url")
    return url or Settings().database_url


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async(_url()))
