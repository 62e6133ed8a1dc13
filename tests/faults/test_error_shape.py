"""Every answer is JSON in the error shape, unexpected errors included, through a real server
too: never Starlette's or uvicorn's plain-text "Internal Server Error"."""

import logging

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from app.config import Settings
from app.ingestion import endpoints as ingestion_endpoints
from app.main import create_app
from tests.conftest import LiveServer
from tests.factories import basic_auth, stored_events, track


class Boom(Exception):
    pass


async def boom() -> None:
    raise Boom("a bug in a route")


class BrokenMiddleware:
    """A middleware that fails on /broken-middleware: outside everything but Starlette's own
    ServerErrorMiddleware (added last, so outermost of the app's middleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/broken-middleware":
            raise Boom("a bug in a middleware")
        await self.app(scope, receive, send)


def app_with_bugs(settings: Settings) -> FastAPI:
    app = create_app(settings)
    app.add_api_route("/boom", boom)
    app.add_middleware(BrokenMiddleware)
    return app


def assert_internal_error(r: httpx.Response) -> str:
    assert r.status_code == 500, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["code"] == "internal_error"
    error_id = body["details"][0]["error_id"]
    assert error_id in body["message"]
    return str(error_id)


async def test_an_unexpected_error_is_a_json_500_whose_id_is_logged(settings, db_engine, caplog):
    app = app_with_bugs(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        with caplog.at_level(logging.ERROR, logger="app.errors"):
            error_id = assert_internal_error(await client.get("/boom"))
        # The next request on the app is served as usual.
        assert (await client.get("/v1/leads")).status_code == 401
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert isinstance(logged[0].exc_info[1], Boom)


@pytest.fixture
def buggy_server(settings, db_engine):
    with LiveServer(app_with_bugs(settings)) as server:
        yield server


@pytest.mark.parametrize("path", ["/boom", "/broken-middleware"])
async def test_a_real_server_answers_unexpected_errors_in_json(buggy_server, path):
    async with httpx.AsyncClient(base_url=buggy_server.url) as client:
        assert_internal_error(await client.get(path))
        r = await client.get("/v1/leads")  # the server goes on serving
        assert (r.status_code, r.json()["code"]) == (401, "unauthorized")


async def test_unknown_routes_and_methods_are_json_too(live_server):
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        r = await client.get("/no/such/thing")
        assert (r.status_code, r.json()["code"]) == (404, "not_found")
        r = await client.delete("/v1/leads")
        assert (r.status_code, r.json()["code"]) == (405, "method_not_allowed")


def broken_validation(*_args: object, **_kwargs: object) -> None:
    raise Boom("a bug in ingestion")


async def test_a_bug_in_ingestion_is_answered_by_the_app_handlers(
    settings, db_engine, session, site, monkeypatch, caplog
):
    with LiveServer(create_app(settings)) as server, caplog.at_level(logging.ERROR, "app.errors"):
        async with httpx.AsyncClient(base_url=server.url, auth=basic_auth(site.write_key)) as c:
            with monkeypatch.context() as patched:
                patched.setattr(ingestion_endpoints, "validate_batch", broken_validation)
                error_id = assert_internal_error(
                    await c.post("/v1/batch", json={"batch": [track("a", "X")]})
                )
            # The connection and the server go on serving.
            r = await c.post("/v1/batch", json={"batch": [track("a", "X")]})
            assert (r.status_code, r.json()["accepted"]) == (200, 1)
    logged = [record for record in caplog.records if error_id in record.getMessage()]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert isinstance(logged[0].exc_info[1], Boom)
    assert len(await stored_events(session, site.site.id)) == 1
