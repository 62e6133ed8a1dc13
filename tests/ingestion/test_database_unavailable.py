"""Every way of "the database cannot take work now" is a 503 storage_unavailable after a short
retry, never a 500: refused connections, and a server that answers the connection with
"starting up" (57P03), "shutting down" (57P01/57P02) or "too many connections" (53300).

The refusing server is real asyncpg against a port where nothing listens; the others are a
socket that speaks just enough of PostgreSQL's protocol to refuse the connection the way a
real server does (a real restart is tested elsewhere)."""

import asyncio
import struct
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
from sqlalchemy import text

from app.config import IngestionSettings, Settings
from app.db import database_unavailable, make_engine
from app.domain.events import IngestEvent
from app.ingestion.pipeline import IngestPipeline, StorageUnavailable
from app.ingestion.store import Submission
from app.main import create_app
from tests.conftest import free_port

SSL_REQUEST = 80877103


def _error_response(sqlstate: str, message: str) -> bytes:
    fields = b"".join(
        code + value.encode() + b"\0"
        for code, value in ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", sqlstate), (b"M", message))
    )
    body = fields + b"\0"
    return b"E" + struct.pack("!i", len(body) + 4) + body


async def _refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, error: bytes) -> None:
    try:
        while True:
            length = struct.unpack("!i", await reader.readexactly(4))[0]
            payload = await reader.readexactly(length - 4)
            if length == 8 and struct.unpack("!i", payload)[0] == SSL_REQUEST:
                writer.write(b"N")  # no TLS: go on in plain text
                await writer.drain()
                continue
            writer.write(error)  # the startup message: refused, as PostgreSQL does
            await writer.drain()
            return
    except (asyncio.IncompleteReadError, ConnectionError):
        return
    finally:
        writer.close()


@pytest.fixture
async def refusing_server(request: pytest.FixtureRequest) -> AsyncIterator[int]:
    sqlstate, message = request.param
    error = _error_response(sqlstate, message)
    server = await asyncio.start_server(lambda r, w: _refuse(r, w, error), host="127.0.0.1", port=0)
    async with server:
        yield server.sockets[0].getsockname()[1]


REFUSALS = [
    ("57P03", "the database system is starting up"),
    ("57P01", "terminating connection due to administrator command"),
    ("57P02", "terminating connection because of crash of another server process"),
    ("53300", "sorry, too many clients already"),
]


def _event() -> IngestEvent:
    now = datetime.now(UTC)
    return IngestEvent(
        message_id="m1",
        type="track",
        name="X",
        anonymous_id="a",
        user_id=None,
        previous_id=None,
        timestamp=now,
        original_timestamp=None,
        sent_at=None,
        received_at=now,
        properties={},
        traits={},
        context={},
    )


async def _submit_to(url: str) -> BaseException | None:
    engine = make_engine(Settings(database_url=url))
    pipeline = IngestPipeline(engine, IngestionSettings())
    pipeline.start()
    try:
        await pipeline.submit(Submission(uuid.uuid4(), [_event()]))
    except Exception as exc:
        return exc
    finally:
        await pipeline.stop()
        await engine.dispose()
    return None


@pytest.mark.parametrize("refusing_server", REFUSALS, indirect=True, ids=[r[0] for r in REFUSALS])
async def test_a_refusing_server_is_storage_unavailable(refusing_server):
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{refusing_server}/test"
    assert isinstance(await _submit_to(url), StorageUnavailable)


async def test_a_refused_connection_is_storage_unavailable():
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/test"
    assert isinstance(await _submit_to(url), StorageUnavailable)


@pytest.mark.parametrize("refusing_server", REFUSALS, indirect=True, ids=[r[0] for r in REFUSALS])
async def test_the_driver_and_sqlalchemy_errors_are_classified(refusing_server):
    dsn = f"postgresql://postgres@127.0.0.1:{refusing_server}/test"
    with pytest.raises(asyncpg.PostgresError) as raw:
        await asyncpg.connect(dsn, timeout=5)
    assert database_unavailable(raw.value)
    engine = make_engine(Settings(database_url=dsn.replace("postgresql", "postgresql+asyncpg")))
    try:
        with pytest.raises(Exception) as wrapped:  # noqa: PT011 (SQLAlchemy's wrapper)
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        assert database_unavailable(wrapped.value)
    finally:
        await engine.dispose()


async def test_a_statement_error_is_not_unavailability(db_engine):
    with pytest.raises(Exception) as bad:  # noqa: PT011
        async with db_engine.connect() as conn:
            await conn.execute(text("SELECT * FROM no_such_table"))
    assert not database_unavailable(bad.value)


@pytest.mark.parametrize(
    "refusing_server", REFUSALS[:1], indirect=True, ids=[r[0] for r in REFUSALS[:1]]
)
async def test_ingestion_answers_503_while_the_database_starts_up(refusing_server):
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{refusing_server}/test"
    app = create_app(Settings(database_url=url, create_demo_site=False, run_background=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            r = await client.post(
                "/v1/track",
                auth=("wk_any", ""),
                json={"type": "track", "event": "X", "userId": "u"},
            )
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "storage_unavailable"
    assert r.headers["retry-after"] == "5"
