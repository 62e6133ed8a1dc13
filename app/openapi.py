"""OpenAPI documentation of the error answers: every error is one shape, `ErrorBody`
(`{"code", "message", "details"}`), FastAPI's own `{"detail": [...]}` 422 included, which
`install_error_handlers` replaces at run time and `errors()` replaces in the documents."""

from typing import Any

from app.errors import ErrorBody
from app.ingestion.schemas import Message

_DESCRIPTIONS = {
    400: "The request is not valid (e.g. its body is not JSON)",
    401: "No key, or an unknown one",
    403: "A key that cannot do this (e.g. a write key on a management route)",
    404: "No such resource for this site",
    409: "The resource's state does not allow this",
    413: "The request is too large",
    415: "The body's media type or encoding is not supported",
    422: "A parameter or the body is not valid; `details` names each problem",
    503: "The database cannot be reached; nothing was changed, retry later",
}
# Routes authenticated with the site's secret key (Bearer) can answer these.
SECRET_KEY_ERRORS = (401, 403, 422, 503)
# A route with a JSON body also answers 400 when the body cannot be read (not UTF-8).
BODY = 400


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route or router: each status documented with the error body."""
    return {
        status: {"model": ErrorBody, "description": _DESCRIPTIONS[status]}
        for status in sorted(statuses)
    }


# The ingestion routes read their bodies themselves (Segment's format, validated event by
# event); these document what they read.
INGESTION_ERRORS = (400, 401, 403, 413, 415, 503)
_WRITE_KEY = {
    "type": "string",
    "description": "the write key, if not sent as the HTTP Basic user name",
}


def _message_schema() -> dict[str, Any]:
    schema = Message.model_json_schema()
    schema["properties"]["writeKey"] = _WRITE_KEY
    return schema


def ingestion_body(*, batch: bool) -> dict[str, Any]:
    """`openapi_extra=` for an ingestion route: its JSON request body (gzip also accepted)."""
    if batch:
        schema: dict[str, Any] = {
            "type": "object",
            "required": ["batch"],
            "properties": {
                "batch": {"type": "array", "items": Message.model_json_schema()},
                "sentAt": {"type": "string", "format": "date-time"},
                "context": {"type": "object"},
                "writeKey": _WRITE_KEY,
            },
        }
    else:
        schema = _message_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
