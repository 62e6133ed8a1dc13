"""HTTP helpers shared by the domains' endpoints."""

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse as StarletteJSONResponse

_HEADERS = "leadheat.headers"


def header(request: Request, name: bytes) -> str | None:
    """A request header by its lower-case name (ASGI servers lower-case them), the first one
    if repeated, as Starlette's `request.headers` gives it. The header list is read into a
    dict once per request: Starlette's Headers scans it at every lookup, and ingestion makes
    several per request."""
    scope = request.scope
    headers: dict[bytes, bytes] | None = scope.get(_HEADERS)
    if headers is None:
        headers = scope[_HEADERS] = dict(reversed(scope["headers"]))
    value = headers.get(name)
    return None if value is None else value.decode("latin-1")


class JSONResponse(StarletteJSONResponse):
    """A JSON response serialized with orjson (datetimes, UUIDs and dataclasses included).
    A subclass of Starlette's, so that FastAPI documents each route's response model in
    OpenAPI (for any other response class it documents a bare string)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
