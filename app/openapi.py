"""OpenAPI documentation of the error answers: every error is one shape, `ErrorBody`
(`{"code", "message", "details"}`), FastAPI's own `{"detail": [...]}` 422 included, which
`install_error_handlers` replaces at run time and `errors()` replaces in the documents."""

from typing import Any

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
