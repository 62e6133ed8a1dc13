"""The OpenAPI document. Error answers: every error is one shape, `ErrorBody`
(`{"code", "message", "details"}`), FastAPI's own `{"detail": [...]}` 422 included, which
`install_error_handlers` replaces at run time and `errors()` replaces in the documents. Then
what FastAPI cannot tell from the routes (`document`): the write key's security scheme, the
models of what routes validate themselves (the rule set) and the webhooks' payloads."""

from collections.abc import Mapping
from importlib import metadata
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.errors import ErrorBody

_DESCRIPTIONS = {
    400: "The request is not valid (e.g. its body is not JSON)",
    401: "No key, or an unknown one",
    403: "A key or role that cannot do this (e.g. a write key, or a manager on an admin route)",
    404: "No such resource for this site",
    409: "The resource's state does not allow this",
    413: "The request is too large",
    415: "The body's media type or encoding is not supported",
    422: "A parameter or the body is not valid; `details` names each problem",
    429: "Too many attempts; retry after the time in Retry-After",
    503: "The database cannot be reached; nothing was changed, retry later",
}
# Routes authenticated with the site's secret key, a personal token (Bearer) or a sign-in
# session can answer these.
SECRET_KEY_ERRORS = (401, 403, 422, 503)
# A route with a JSON body also answers 400 when the body cannot be read (not UTF-8).
BODY = 400


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route or router: each status documented with the error body."""
    return {
        status: {"model": ErrorBody, "description": _DESCRIPTIONS[status]}
        for status in sorted(statuses)
    }


def package_version() -> str:
    """The installed package's version (`info.version`, `leadheat --version`)."""
    try:
        return metadata.version("leadheat")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


# The secret key's scheme (Bearer) comes from its dependency (app/sites/dependencies.py);
# ingestion and /metrics read their credentials themselves, so theirs are declared here.
SECURITY_SCHEMES = {
    "writeKey": {
        "type": "http",
        "scheme": "basic",
        "description": "The site's write key as the user name, with no password (Segment's"
        " way); it may instead be sent as `writeKey` in the body.",
    },
    "metricsToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "`LEADHEAT_METRICS__TOKEN`, when it is set",
    },
}
# `openapi_extra=` of a route that takes the write key.
WRITE_KEY: dict[str, Any] = {"security": [{"writeKey": []}]}
# `openapi_extra=` of /metrics: the token when one is set, else nothing (`{}`).
METRICS_TOKEN: dict[str, Any] = {"security": [{"metricsToken": []}, {}]}

_WEBHOOK_HEADERS = [
    ("webhook-id", "the message's id (msg_...): the same on every attempt; deduplicate on it"),
    ("webhook-timestamp", "when this attempt was signed, in Unix seconds"),
    ("webhook-signature", "`v1,<base64 HMAC-SHA256>`, one per secret during a rotation"),
]


def document(
    app: FastAPI,
    *,
    schemas: dict[str, dict[str, Any]],
    webhooks: Mapping[str, type[BaseModel]],
) -> dict[str, Any]:
    """FastAPI's document of `app`, plus `schemas` (ready JSON Schemas, as components),
    the write key's scheme and, for each webhook event type, its payload (Standard Webhooks:
    signed POSTs, docs/webhooks.md)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        servers=app.servers,
        separate_input_output_schemas=app.separate_input_output_schemas,
    )
    # FastAPI documents a 422 of its own shape on every route with parameters; where a route
    # can answer 422 it is documented with `errors(422)`, and the others cannot answer it.
    for operations in doc["paths"].values():
        for operation in operations.values():
            answers = operation["responses"]
            if "HTTPValidationError" in str(answers.get("422")):
                del answers["422"]
    components = doc.setdefault("components", {})
    for fastapi_own in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(fastapi_own, None)
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    _, payloads = models_json_schema(
        [(model, "validation") for model in webhooks.values()],
        ref_template="#/components/schemas/{model}",
    )
    for name, schema in {**schemas, **payloads["$defs"]}.items():
        # Two models of one name would silently replace each other's schema.
        if components["schemas"].setdefault(name, schema) != schema:
            raise ValueError(f"two OpenAPI schemas are named {name!r}")
    doc["webhooks"] = {
        event_type: {
            "post": {
                "summary": event_type,
                "description": model.__doc__ or "",
                "operationId": f"webhook_{event_type.replace('.', '_')}",
                "parameters": [
                    {
                        "name": name,
                        "in": "header",
                        "required": True,
                        "description": text,
                        "schema": {"type": "string"},
                    }
                    for name, text in _WEBHOOK_HEADERS
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": f"#/components/schemas/{model.__name__}"}
                        }
                    },
                },
                "responses": {
                    "2XX": {"description": "Received. Any other answer (or none) is retried."}
                },
            }
        }
        for event_type, model in webhooks.items()
    }
    app.openapi_schema = doc
    return doc
