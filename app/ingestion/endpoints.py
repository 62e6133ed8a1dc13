"""The Segment HTTP tracking API: `/v1/batch` and the single calls.

Existing Segment libraries work by pointing their host here. The write key comes the Segment
way: HTTP Basic with the key as user name (empty password), or `writeKey` in the body.
"""

import base64
import binascii
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.routing import APIRoute
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, ExceptionHandler, Message, Receive, Scope, Send

from app.config import Settings
from app.db import utcnow
from app.domain.events import IngestEvent
from app.errors import AppError, DatabaseUnavailable, Forbidden, PayloadTooLarge, Unauthorized
from app.http import JSONResponse, header
from app.ingestion.parsing import (
    Rejection,
    consent_refused,
    parse_json,
    read_body,
    validate_batch,
    validate_event,
)
from app.ingestion.pipeline import IngestPipeline, StorageUnavailable
from app.ingestion.schemas import INGESTION_ERRORS, IngestResponse, ingestion_body
from app.ingestion.store import BOT, DUPLICATE, Submission
from app.logs import REQUEST_ID
from app.metrics import count_consent_refused, count_rejected
from app.openapi import errors
from app.sites.service import SiteRef, WriteKeyCache


class IngestionRoute(APIRoute):
    """A route that OpenAPI documents like any other (its body, answer and errors), served
    as a plain ASGI route: the endpoint takes the Request and returns the Response, without
    FastAPI's per-request dependency solving, response validation and exit stacks (ingestion
    reads and validates Segment's format itself, event by event). What it raises goes to the
    app's exception handlers, as on any route."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.app = _serve(endpoint)


def _serve(endpoint: Callable[[Request], Awaitable[Response]]) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await endpoint(Request(scope, receive))
        await response(scope, receive, send)

    return app


class PostsFirst:
    """ASGI middleware (create_app installs it inside CatchAllMiddleware): a POST to an
    ingestion route of the app's route table is handed to that route at once, ahead of
    FastAPI's routing and exit-stack layers, which cost the hottest path a good part of its
    CPU. What the route raises goes to the app's exception handlers (Starlette's
    ExceptionMiddleware, given the app's handlers) and the unexpected on to
    CatchAllMiddleware, as from any route. Anything else (the preflight, a wrong method)
    goes on through the app, to the same routes."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Sequence[BaseRoute],
        handlers: Mapping[Any, ExceptionHandler],
    ) -> None:
        self.app = app
        # Starlette gives the handlers of 500 and Exception to its outermost middleware.
        handled = {key: handler for key, handler in handlers.items() if key not in (500, Exception)}
        self.posts = {
            route.path: (route, ExceptionMiddleware(route.app, handlers=handled))
            for route in routes
            if isinstance(route, IngestionRoute) and "POST" in (route.methods or ())
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            found = self.posts.get(scope["path"])
            if found is not None:
                scope["route"] = found[0]  # as the routing sets it (the metrics' route label)
                await found[1](scope, receive, _cors_on_errors(scope, send))
                return
        await self.app(scope, receive, send)


def _cors_on_errors(scope: Scope, send: Send) -> Send:
    """Error answers carry CORS headers too: a browser library that cannot read the status
    sees a network failure and retries what a 4xx says is never going to be accepted."""
    origin = next((value for name, value in scope["headers"] if name == b"origin"), None)
    if origin is None:
        return send

    async def send_with_cors(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] >= 400:
            headers = list(message.get("headers", ()))
            if not any(name.lower() == b"access-control-allow-origin" for name, _ in headers):
                headers += [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
                message = {**message, "headers": headers}
        await send(message)

    return send_with_cors


# create_app puts these routes first in the app's own route table (see app/main.py).
router = APIRouter(
    prefix="/v1",
    tags=["ingestion"],
    responses=errors(*INGESTION_ERRORS),
    route_class=IngestionRoute,
)

SINGLE_CALLS = ("track", "page", "screen", "identify", "alias", "group")
# Segment's browser library (analytics-next) posts single calls to one-letter paths, and its
# batching delivery to `/b`: the same calls under other names, left out of the OpenAPI document.
SHORT_PATHS = {
    "t": "track",
    "p": "page",
    "s": "screen",
    "i": "identify",
    "a": "alias",
    "g": "group",
}
BATCH_PATHS = ("/batch", "/import", "/b")
# The request headers real clients send: analytics-next adds X-Retry-Count on a retry;
# RudderStack's browser SDK sends the visitor's id (base64) as AnonymousId, SentAt, and
# RSA-* headers describing a retry. Anything else is refused by the browser before it is sent.
CLIENT_HEADERS = (
    "Authorization",
    "Content-Type",
    "Content-Encoding",
    "X-Retry-Count",
    "AnonymousId",
    "SentAt",
    "RSA-Retry-Attempt",
    "RSA-Retry-Reason",
    "RSA-Since-First-Attempt",
    "RSA-Since-Last-Attempt",
)
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": ", ".join(CLIENT_HEADERS),
    "Access-Control-Max-Age": "86400",
}


# Authorization header -> write key: a shop's pages send the same few headers all day.
_BASIC_KEYS: dict[str, str | None] = {}


def basic_write_key(request: Request) -> str | None:
    authorization = header(request, b"authorization")
    if not authorization:
        return None
    if authorization in _BASIC_KEYS:
        return _BASIC_KEYS[authorization]
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise Unauthorized("Send the write key as HTTP Basic user name, or as 'writeKey'.")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("The Basic credentials are not valid base64.") from exc
    if len(_BASIC_KEYS) >= 1024:  # bounded: any client can send any header
        _BASIC_KEYS.clear()
    key = _BASIC_KEYS[authorization] = decoded.partition(":")[0] or None
    return key


async def _site_for(request: Request, write_key: Any) -> SiteRef:
    if not isinstance(write_key, str) or not write_key:
        raise Unauthorized(
            "No write key: send it as HTTP Basic user name (empty password) or as 'writeKey'."
        )
    cache: WriteKeyCache = request.app.state.write_keys
    site = await cache.get(write_key)  # a database error: the app's handlers answer 503/500
    if site is None:
        raise Unauthorized("Unknown write key.")
    origin = header(request, b"origin")
    if not site.allows_origin(origin):
        raise Forbidden(f"Origin {origin} is not allowed for this site.", code="origin_not_allowed")
    return site


def cors_headers(request: Request) -> dict[str, str]:
    """What the browser needs to let the page read the answer (empty without an Origin)."""
    origin = header(request, b"origin")
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"} if origin else {}


async def _read(request: Request) -> tuple[dict[str, Any], SiteRef, datetime]:
    received_at = utcnow()
    settings: Settings = request.app.state.settings
    header_key = basic_write_key(request)
    site = await _site_for(request, header_key) if header_key else None
    payload = parse_json(await read_body(request, settings.ingestion.max_request_bytes))
    if not isinstance(payload, dict):
        raise AppError("The body must be a JSON object.", code="invalid_json")
    if site is None:
        site = await _site_for(request, payload.get("writeKey"))
    return payload, site, received_at


async def _ingest(
    request: Request, site: SiteRef, results: list[IngestEvent | Rejection]
) -> dict[str, Any]:
    """Store the valid events; the answer, shaped as `IngestResponse` documents it (a dict:
    building the model would cost more than parsing the request's JSON)."""
    settings: Settings = request.app.state.settings
    pipeline: IngestPipeline = request.app.state.ingest_pipeline
    events = [r for r in results if isinstance(r, IngestEvent)]
    rejections = [r for r in results if isinstance(r, Rejection)]
    if rejections:
        count_rejected(r.code for r in rejections)
    # Consent refused: not stored, answered as accepted (the client must not retry it).
    categories = frozenset(settings.privacy.consent_categories)
    kept = [e for e in events if not consent_refused(e.context, categories)]
    refused = len(events) - len(kept)
    if refused:
        pipeline.stats["consent_refused_events"] += refused
        count_consent_refused(refused)
        events = kept
    outcomes: list[str] = []
    if events:
        submission = Submission(site.id, events, request_id=REQUEST_ID.get())
        try:
            outcomes = (await pipeline.submit(submission)).outcomes
        except StorageUnavailable as exc:
            # Nothing was stored: the client keeps the events and retries (Segment's do on 5xx).
            raise DatabaseUnavailable(
                "Events cannot be stored right now; nothing was accepted, retry later."
            ) from exc
    duplicates = outcomes.count(DUPLICATE)
    return {
        "success": True,
        "accepted": len(outcomes) - duplicates + refused,
        "duplicates": duplicates,
        "rejected": len(rejections),
        "bots": outcomes.count(BOT),
        "errors": [{"index": r.index, "code": r.code, "message": r.message} for r in rejections],
    }


def _answer(request: Request, body: dict[str, Any]) -> Response:
    return JSONResponse(body, headers=cors_headers(request))


@router.post("/batch", response_model=IngestResponse, openapi_extra=ingestion_body("batch"))
@router.post("/import", response_model=IngestResponse, include_in_schema=False)
@router.post("/b", response_model=IngestResponse, include_in_schema=False)
async def batch(request: Request) -> Response:
    """Many events in one call. Each event is validated on its own: good ones are stored,
    bad ones are listed with their index and reason; the answer is 200 either way."""
    payload, site, received_at = await _read(request)
    settings: Settings = request.app.state.settings
    raw_events = payload.get("batch")
    if not isinstance(raw_events, list):
        raise AppError("The body needs 'batch', a list of events.", code="invalid_batch")
    if len(raw_events) > settings.ingestion.max_batch_events:
        raise PayloadTooLarge(
            f"A batch holds at most {settings.ingestion.max_batch_events} events."
        )
    results = validate_batch(
        raw_events,
        sent_at=payload.get("sentAt"),
        shared_context=payload.get("context"),
        received_at=received_at,
        max_event_bytes=settings.ingestion.max_event_bytes,
    )
    return _answer(request, await _ingest(request, site, results))


def _single_call(call: str) -> Any:
    async def endpoint(request: Request) -> Response:
        payload, site, received_at = await _read(request)
        settings: Settings = request.app.state.settings
        result = validate_event(
            payload,
            index=0,
            forced_type=call,
            batch_sent_at=None,
            received_at=received_at,
            max_event_bytes=settings.ingestion.max_event_bytes,
        )
        if isinstance(result, Rejection):
            count_rejected((result.code,))
            detail = [{"index": 0, "code": result.code, "message": result.message}]
            error = PayloadTooLarge if result.code == "event_too_large" else AppError
            raise error(
                f"The {call} call is not valid: {result.message}.", code=result.code, details=detail
            )
        return _answer(request, await _ingest(request, site, [result]))

    endpoint.__name__ = call
    endpoint.__doc__ = f"One `{call}` call (Segment spec)."
    return endpoint


for _call in SINGLE_CALLS:
    _endpoint = _single_call(_call)
    router.add_api_route(
        f"/{_call}",
        _endpoint,
        methods=["POST"],
        response_model=IngestResponse,
        openapi_extra=ingestion_body(_call),
    )
    _short = next(short for short, call in SHORT_PATHS.items() if call == _call)
    router.add_api_route(
        f"/{_short}",
        _endpoint,
        methods=["POST"],
        response_model=IngestResponse,
        include_in_schema=False,
    )


async def preflight(request: Request) -> Response:
    """CORS preflight. It cannot carry the write key, so it is answered for any origin; the
    actual request is then checked against the site's allowed origins."""
    return Response(status_code=204, headers={**PREFLIGHT_HEADERS, **cors_headers(request)})


for _path in (*BATCH_PATHS, *(f"/{call}" for call in (*SINGLE_CALLS, *SHORT_PATHS))):
    router.add_api_route(_path, preflight, methods=["OPTIONS"], include_in_schema=False)
