"""Fault tests: commits that fail for real, databases that go away, slow clients."""

import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.conftest import make_settings


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Background loops off: they would write on their own while a test breaks commits."""
    return make_settings(database_url, run_background=False)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def unreachable(database_url: str, closed_port: int, tmp_path) -> Settings:
    if database_url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path}/no/such/directory/leadheat.db"
    else:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port}/leadheat"
    return Settings(database_url=url, run_background=False, create_demo_site=False)


@pytest.fixture
async def down_client(unreachable: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(unreachable)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        yield client
