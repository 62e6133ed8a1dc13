"""Test fixtures: every test runs on SQLite and on PostgreSQL, on a schema made by the
migrations, with the tables emptied after each test.

PostgreSQL is taken from LEADHEAT_TEST_POSTGRES_URL (default: the local server's `test`
database); each run creates and drops its own database. With CI=true an unreachable
PostgreSQL fails the run instead of skipping its half.
"""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from cryptography.fernet import Fernet
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.config import IngestionSettings, ScoringSettings, Settings
from app.db import make_engine, make_sessionmaker
from app.main import create_app
from app.migrate import upgrade
from app.models import metadata
from app.sites.service import CreatedSite
from tests.factories import create_site
from tests.helpers import free_port, start_in_thread

POSTGRES_URL = os.environ.get(
    "LEADHEAT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() == "true"

# Webhook secrets are encrypted with this key, also in `leadheat` subprocesses (PostgreSQL
# needs one; the SQLite key file made without one is tested in tests/webhooks/test_secrets.py).
os.environ.setdefault("LEADHEAT_SECRETS_KEY", Fernet.generate_key().decode())


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


DATABASES = ["sqlite", "postgresql"]


@contextmanager
def new_database(kind: str, directory: Path) -> Iterator[str]:
    """The URL of a new, empty database of `kind` ("sqlite": a file in `directory`;
    "postgresql": its own database on the test server, dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{directory / 'leadheat-test.db'}"
        return
    name = f"leadheat_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = _asyncpg_dsn(POSTGRES_URL)

    async def admin_exec(sql: str) -> None:
        conn = await asyncpg.connect(admin, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin_exec(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI and is not reachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}")
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session", params=DATABASES)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with new_database(request.param, tmp_path_factory.mktemp("sqlite")) as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
async def db_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The tests' own engine: what they read through it was committed by the service."""
    engine = make_engine(Settings(database_url=database_url))
    yield engine
    await engine.dispose()


@pytest.fixture(autouse=True)
async def _empty_tables(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    yield
    if "db_engine" not in request.fixturenames:
        return
    engine: AsyncEngine = request.getfixturevalue("db_engine")
    tables = [t.name for t in reversed(metadata.sorted_tables)]
    # DELETE, children first, and not TRUNCATE on PostgreSQL: a test leaves a few rows, and
    # truncating every table makes new files for each table and index (a fifth of a second).
    async with engine.begin() as conn:
        for table in tables:
            await conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
async def session(db_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session for factories and assertions. Autocommit: every read sees what the service
    committed so far (on SQLite a transaction would hold one snapshot)."""
    autocommit = db_engine.execution_options(isolation_level="AUTOCOMMIT")
    async with make_sessionmaker(autocommit)() as session:
        yield session


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """The tests' settings: no demo site, caches off (every change seen at once)."""
    fields: dict[str, Any] = {
        "database_url": database_url,
        "create_demo_site": False,
        "ingestion": IngestionSettings(write_key_cache_seconds=0),
        "scoring": ScoringSettings(rule_set_cache_seconds=0, rescore_processes=0),
    }
    return Settings(**{**fields, **overrides})


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
def site_origins() -> list[str] | None:
    """The origins the `site` fixture's site allows (a module about CORS overrides this)."""
    return None


@pytest.fixture
async def site(session: AsyncSession, site_origins: list[str] | None) -> CreatedSite:
    return await create_site(session, origins=site_origins)


@pytest.fixture
async def other_site(session: AsyncSession) -> CreatedSite:
    return await create_site(session, name="Another shop")


@pytest.fixture
async def app(settings: Settings, db_engine: AsyncEngine) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://leadheat.test") as c:
        yield c


class LiveServer:
    """A real uvicorn server in a thread, for tests about real HTTP."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)

    def __enter__(self) -> "LiveServer":
        self.thread = start_in_thread(self.server)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def live_server(settings: Settings, db_engine: AsyncEngine) -> Iterator[LiveServer]:
    with LiveServer(create_app(settings)) as server:
        yield server


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
