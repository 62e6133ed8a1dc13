"""When the database is away, ingestion answers 503 (clients keep the events and retry) and
recovers by itself; a connection the server dropped is replaced without losing the request."""

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from app.config import Settings
from app.main import create_app
from tests.factories import basic_auth, create_site, stored_events, track


async def test_an_unreachable_database_is_a_503_with_a_json_body():
    settings = Settings(
        database_url="postgresql+asyncpg://postgres@127.0.0.1:1/nowhere",
        create_demo_site=False,
        run_background=False,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            r = await client.post("/v1/track", auth=("wk_any", ""), json=track("a", "X"))
    assert r.status_code == 503
    assert r.json()["code"] == "storage_unavailable"
    assert r.headers["retry-after"] == "5"


async def test_connections_killed_by_the_server_are_replaced(client, session, settings):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("terminating server connections is a PostgreSQL test")
    site = await create_site(session)
    first = await client.post(
        "/v1/track", auth=basic_auth(site.write_key), json=track("a", "X", "k1")
    )
    assert first.status_code == 200
    # The database restarts (or a failover happens): every pooled connection dies.
    url = make_url(settings.database_url)
    admin = await asyncpg.connect(
        url.set(drivername="postgresql", database="postgres").render_as_string(False)
    )
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid() AND application_name = ''",
            url.database,
        )
    finally:
        await admin.close()
    again = await client.post(
        "/v1/track", auth=basic_auth(site.write_key), json=track("a", "X", "k2")
    )
    assert again.status_code == 200
    assert again.json()["accepted"] == 1
    assert [e.message_id for e in await stored_events(session, site.site.id)] == ["k1", "k2"]


async def test_an_unexpected_failure_is_a_json_500_and_other_requests_go_on(client, session, app):
    site = await create_site(session)
    pipeline = app.state.ingest_pipeline
    real_submit = pipeline.submit

    async def broken(submission):
        raise RuntimeError("a bug")

    pipeline.submit = broken
    try:
        r = await client.post("/v1/track", auth=basic_auth(site.write_key), json=track("a", "X"))
    finally:
        pipeline.submit = real_submit
    assert r.status_code == 500
    assert r.json()["code"] == "internal_error"
    ok = await client.post("/v1/track", auth=basic_auth(site.write_key), json=track("a", "X"))
    assert ok.status_code == 200
