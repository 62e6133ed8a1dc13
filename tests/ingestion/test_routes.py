"""Ingestion's routes are routes of the app like the others: in its route table, documented
in OpenAPI, and what they raise answered by the app's error handlers."""

import logging

import httpx
from fastapi import FastAPI, Request
from starlette.routing import Route

from app.config import Settings
from app.errors import Unauthorized
from app.http import JSONResponse
from app.ingestion import endpoints
from app.main import create_app
from tests.conftest import LiveServer
from tests.factories import basic_auth, create_site, stored_events, track

CALLS = ("batch", "import", "track", "page", "screen", "identify", "alias", "group")
PATHS = {f"/v1/{call}" for call in CALLS}


def test_the_app_route_table_lists_the_ingestion_routes(settings: Settings) -> None:
    app = create_app(settings)
    routes = {
        (route.path, method)
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
    }
    assert {(path, "POST") for path in PATHS} <= routes
    assert {(path, "OPTIONS") for path in PATHS} <= routes  # CORS preflight
    documented = app.openapi()["paths"]
    assert {path for path in PATHS if "post" in documented.get(path, {})} == PATHS - {"/v1/import"}


async def test_an_error_handler_of_the_app_answers_ingestion_errors(settings, db_engine) -> None:
    app = create_app(settings)
    handled: list[Exception] = []

    async def unauthorized(_request: Request, exc: Exception) -> JSONResponse:
        handled.append(exc)
        return JSONResponse({"code": "seen_by_the_app", "message": "", "details": []}, 401)

    app.add_exception_handler(Unauthorized, unauthorized)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        r = await client.post("/v1/track", json=track("a", "X"))
    assert (r.status_code, r.json()["code"]) == (401, "seen_by_the_app")
    assert len(handled) == 1
    assert isinstance(handled[0], Unauthorized)


class Boom(Exception):
    pass


def broken_validation(*_args: object, **_kwargs: object) -> None:
    raise Boom("a bug in ingestion")


async def test_an_unexpected_error_in_ingestion_is_a_json_500_whose_id_is_logged(
    settings, db_engine, session, monkeypatch, caplog
) -> None:
    site = await create_site(session)
    app: FastAPI = create_app(settings)
    with LiveServer(app) as server, caplog.at_level(logging.ERROR, logger="app.errors"):
        async with httpx.AsyncClient(base_url=server.url, auth=basic_auth(site.write_key)) as c:
            with monkeypatch.context() as patched:
                patched.setattr(endpoints, "validate_batch", broken_validation)
                r = await c.post("/v1/batch", json={"batch": [track("a", "X")]})
            assert r.status_code == 500, r.text
            assert r.headers["content-type"] == "application/json"
            body = r.json()
            assert body["code"] == "internal_error"
            error_id = body["details"][0]["error_id"]
            assert error_id in body["message"]
            # The connection and the server go on serving.
            r = await c.post("/v1/batch", json={"batch": [track("a", "X")]})
            assert (r.status_code, r.json()["accepted"]) == (200, 1)
    logged = [record for record in caplog.records if error_id in record.getMessage()]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert isinstance(logged[0].exc_info[1], Boom)
    assert len(await stored_events(session, site.site.id)) == 1
