"""Ingestion's routes are routes of the app like the others: in its route table, documented
in OpenAPI, and what they raise answered by the app's error handlers."""

import httpx
from fastapi import Request
from starlette.routing import Route

from app.config import Settings
from app.errors import Unauthorized
from app.http import JSONResponse
from app.main import create_app
from tests.factories import track

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
