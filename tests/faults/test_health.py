"""Liveness (the process serves; never touches the database) and readiness (the database
answers `SELECT 1` in time); `/health` is readiness (Docker's HEALTHCHECK uses it)."""

import asyncio
import time

import httpx

from app.config import HttpSettings, Settings
from app.main import create_app
from tests.conftest import LiveServer
from tests.faults.helpers import assert_unavailable


async def test_both_answer_200_with_the_database_up(client):
    r = await client.get("/health/live")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    for path in ("/health/ready", "/health"):
        r = await client.get(path)
        assert (r.status_code, r.json()) == (200, {"status": "ok", "database": "ok"})


async def test_readiness_is_503_and_liveness_200_while_the_database_is_away(down_client):
    assert_unavailable(await down_client.get("/health/ready"))
    assert_unavailable(await down_client.get("/health"))
    r = await down_client.get("/health/live")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})


async def test_a_real_server_answers_readiness_in_json_while_the_database_is_away(
    unreachable,
):
    with LiveServer(create_app(unreachable)) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert_unavailable(await client.get("/health"))
            assert (await client.get("/health/live")).status_code == 200


async def test_readiness_gives_up_on_a_database_that_does_not_answer():
    """A server that accepts connections and never says a word (a hung database, a black-holed
    network): readiness answers 503 after its timeout instead of hanging with the prober."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    settings = Settings(
        database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/leadheat",
        run_background=False,
        http=HttpSettings(health_timeout_seconds=0.5),
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://t") as client,
        ):
            started = time.monotonic()
            assert_unavailable(await client.get("/health/ready"))
            assert time.monotonic() - started < 5
            assert (await client.get("/health/live")).status_code == 200
    finally:
        for writer in held:
            writer.close()
        silent.close()
        await silent.wait_closed()
