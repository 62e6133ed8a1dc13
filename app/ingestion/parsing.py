"""From an HTTP body to validated events: size limits, gzip, JSON, per-event validation."""

import contextlib
import json
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson
from crawlerdetect import CrawlerDetect
from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request

from app.domain.events import IngestEvent
from app.errors import AppError, PayloadTooLarge, UnsupportedMediaType
from app.http import header
from app.ingestion.schemas import Message, as_utc, missing_fields

ACCEPTED_CONTENT_TYPES = ("application/json", "text/plain", "")
# How deeply an event's JSON may nest (the event object is level 1; Segment's own fields reach
# 4). Far below orjson's 254 (it cannot re-encode deeper values) and what JSONB takes.
MAX_JSON_DEPTH = 32
EARLIEST_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIMESTAMP_AHEAD = timedelta(days=1)


@dataclass(slots=True)
class Rejection:
    index: int
    code: str
    message: str


async def read_body(request: Request, max_bytes: int) -> bytes:
    """Read the body, gunzipping as it streams; stop at `max_bytes` so that a gzip bomb
    cannot exhaust memory."""
    encoding = (header(request, b"content-encoding") or "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported; use gzip or none.",
            code="unsupported_encoding",
        )
    content_type = (header(request, b"content-type") or "").split(";")[0].strip().lower()
    # A gzipped body is read as JSON whatever its label: RudderStack's Node SDK gzips its JSON
    # and lets axios label the bytes application/x-www-form-urlencoded.
    if content_type not in ACCEPTED_CONTENT_TYPES and encoding != "gzip":
        raise UnsupportedMediaType(
            f"Send JSON as application/json or text/plain, not {content_type!r}."
        )
    declared = header(request, b"content-length")
    if encoding == "identity" and declared and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" else None
    out = bytearray()
    receive = request.receive  # the ASGI messages themselves: no per-chunk async generator
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        if decompressor is None:
            out += chunk
        else:
            try:
                # max_length bounds the output of each step: at most one byte past the limit.
                out += decompressor.decompress(chunk, max_bytes + 1 - len(out))
            except zlib.error as exc:
                raise AppError("The gzip body is corrupt.", code="invalid_gzip") from exc
            if decompressor.unconsumed_tail and len(out) > max_bytes:
                raise _too_large(max_bytes)
        if len(out) > max_bytes:
            raise _too_large(max_bytes)
    if decompressor is not None and not decompressor.eof:
        raise AppError("The gzip body is truncated.", code="invalid_gzip")
    return bytes(out)


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request is larger than {max_bytes // 1024} KB (after decompression).",
        details=[{"limit_bytes": max_bytes}],
    )


def parse_json(body: bytes) -> Any:
    """The body's JSON. A lone UTF-16 surrogate escape (`"\\ud83d"`: a browser's string cut in
    the middle of an emoji, which JSON.stringify writes as it is) is replaced by U+FFFD, rather
    than refusing the whole batch for one broken character (orjson refuses such documents)."""
    if not body.strip():
        raise AppError("The body is empty; send a JSON object.", code="invalid_json")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "surrogate" in str(exc):
            with contextlib.suppress(ValueError, RecursionError):
                # The standard library's parser keeps lone surrogates; NaN stays refused.
                parsed = json.loads(body, parse_constant=_refuse_constant)
                return _without_lone_surrogates(parsed, MAX_JSON_DEPTH + 2)
        raise AppError(f"The body is not valid JSON: {exc}.", code="invalid_json") from exc


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _without_lone_surrogates(value: Any, depth: int) -> Any:
    """`value` with lone surrogates in its strings replaced, `depth` containers deep (deeper
    events are rejected as too deep anyway)."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if depth <= 0:
        return value
    if isinstance(value, dict):
        return {
            _without_lone_surrogates(k, 0): _without_lone_surrogates(v, depth - 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_without_lone_surrogates(v, depth - 1) for v in value]
    return value


_crawler_detect = CrawlerDetect()


@lru_cache(maxsize=8192)
def is_crawler(user_agent: str) -> bool:
    """Known crawlers, by the maintained CrawlerDetect patterns (cached: user agents repeat)."""
    return bool(_crawler_detect.isCrawler(user_agent))


def _error_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = err.get("msg", "invalid").removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def validate_batch(
    raw_events: list[Any],
    *,
    sent_at: Any,
    shared_context: Any,
    received_at: datetime,
    max_event_bytes: int,
) -> list[IngestEvent | Rejection]:
    """A batch's events, each validated on its own (`validate_event`): one result per event,
    in order; the batch's `sentAt` and `context` apply to every event."""
    batch_sent_at = _sent_at(sent_at)
    shared = shared_context if isinstance(shared_context, dict) else None
    results: list[IngestEvent | Rejection] = []
    for index, raw in enumerate(raw_events):
        if shared and isinstance(raw, dict):
            own = raw.get("context")
            if own is None or isinstance(own, dict):  # otherwise validation rejects it
                raw = {**raw, "context": {**shared, **(own or {})}}
        results.append(
            validate_event(
                raw,
                index=index,
                forced_type=None,
                batch_sent_at=batch_sent_at,
                received_at=received_at,
                max_event_bytes=max_event_bytes,
            )
        )
    return results


def _sent_at(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return utc_or_none(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def validate_event(
    raw: Any,
    *,
    index: int,
    forced_type: str | None,
    batch_sent_at: datetime | None,
    received_at: datetime,
    max_event_bytes: int,
) -> IngestEvent | Rejection:
    """Validate one raw message; never raises for bad input, returns a Rejection instead."""
    if not isinstance(raw, dict):
        return Rejection(index, "invalid_event", "an event must be a JSON object")
    if _deeper_than(raw, MAX_JSON_DEPTH):
        return Rejection(
            index, "too_deep", f"the event is nested more than {MAX_JSON_DEPTH} levels deep"
        )
    try:
        dumped = orjson.dumps(raw)
    except orjson.JSONEncodeError as exc:  # a lone surrogate, an int beyond 64 bits...
        return Rejection(index, "invalid_event", f"the event cannot be stored as JSON: {exc}")
    size = len(dumped)
    if size > max_event_bytes:
        return Rejection(
            index,
            "event_too_large",
            f"the event is {size} bytes; the limit is {max_event_bytes // 1024} KB",
        )
    if b"\\u0000" in dumped:  # PostgreSQL cannot store NUL in text or JSONB
        return Rejection(index, "invalid_event", "text may not contain NUL (\\u0000) characters")
    if forced_type is not None:
        raw = {**raw, "type": forced_type}
    try:
        msg = Message.model_validate(raw)
    except ValidationError as exc:
        return Rejection(index, "invalid_event", _error_message(exc))
    missing = missing_fields(msg)
    if missing is not None:
        return Rejection(index, "invalid_event", missing)
    return _event(msg, raw, batch_sent_at, received_at)


def _event(
    msg: Message, raw: dict[str, Any], batch_sent_at: datetime | None, received_at: datetime
) -> IngestEvent:
    timestamp, original, sent_at, correction = event_time(msg, batch_sent_at, received_at)
    context = msg.context or {}
    if "leadheat" in context or correction is not None:
        context = {k: v for k, v in context.items() if k != "leadheat"}  # ours, not the client's
        if correction is not None:
            sent = raw.get("timestamp") or raw.get("originalTimestamp")
            context["leadheat"] = {
                "timestamp_corrected": {"reason": correction, "timestamp": str(sent)[:64]}
            }
    traits = msg.traits or {}
    # Other calls carry the user's traits in the context; so does RudderStack's identify.
    if (msg.type != "identify" or not traits) and isinstance(context.get("traits"), dict):
        traits = context["traits"]
    properties = msg.properties or {}
    if msg.type == "group" and msg.groupId:
        properties = {**properties, "groupId": msg.groupId}
    name = msg.event if msg.type == "track" else msg.name
    if msg.type in ("page", "screen") and msg.category and "category" not in properties:
        properties = {**properties, "category": msg.category}
    user_agent = context.get("userAgent")
    return IngestEvent(
        message_id=msg.messageId or str(uuid.uuid4()),
        type=msg.type,
        name=name,
        anonymous_id=msg.anonymousId or None,
        user_id=msg.userId or None,
        previous_id=msg.previousId or None,
        timestamp=timestamp,
        original_timestamp=original,
        sent_at=sent_at,
        received_at=received_at,
        properties=properties,
        traits=traits,
        context=context,
        is_bot=isinstance(user_agent, str) and is_crawler(user_agent),
    )


def consent_refused(context: dict[str, Any], categories: frozenset[str]) -> bool:
    """Whether the event's context says the visitor refused tracking, in the shapes consent
    managers stamp on events: Segment's `context.consent.categoryPreferences` (category ->
    true/false) and RudderStack's `context.consentManagement` (`allowedConsentIds`,
    `deniedConsentIds`). With `categories` (the ones Leadheat needs, configured): refused
    when any of them is refused. Without: refused when categories are stated and none is
    granted. An event that says nothing about consent is kept (as Segment forwards it)."""
    consent = context.get("consent")
    if type(consent) is dict:
        preferences = consent.get("categoryPreferences")
        if type(preferences) is dict and preferences:
            if categories:
                if any(preferences.get(c) is False for c in categories):
                    return True
            elif not any(v is True for v in preferences.values()):
                return True
    managed = context.get("consentManagement")
    if type(managed) is dict:
        denied = managed.get("deniedConsentIds")
        if type(denied) is list and denied:
            if categories:
                if any(c in categories for c in denied if isinstance(c, str)):
                    return True
            elif not managed.get("allowedConsentIds"):
                return True
    return False


def event_time(
    msg: Message, batch_sent_at: datetime | None, received_at: datetime
) -> tuple[datetime, datetime | None, datetime | None, str | None]:
    """(timestamp, originalTimestamp, sentAt, why the timestamp was replaced or None).

    Segment's skew correction: the client's clock error is receivedAt - sentAt. A timestamp
    that cannot have happened (before 1970, over a day after receipt, or beyond the calendar
    once converted to UTC or corrected) is a broken clock, not a reason to lose the event: it
    becomes receivedAt, and the event's context says so (`leadheat.timestamp_corrected`)."""
    sent_at = utc_or_none(msg.sentAt) or batch_sent_at
    given = msg.timestamp or msg.originalTimestamp
    original = utc_or_none(given)
    if given is None:
        return received_at, None, sent_at, None
    if original is None:
        return received_at, None, sent_at, "out_of_range"
    try:
        timestamp = original + (received_at - sent_at) if sent_at is not None else original
    except OverflowError:
        return received_at, original, sent_at, "out_of_range"
    if timestamp < EARLIEST_TIMESTAMP:
        return received_at, original, sent_at, "before_1970"
    if timestamp - received_at > MAX_TIMESTAMP_AHEAD:
        return received_at, original, sent_at, "in_the_future"
    return timestamp, original, sent_at, None


def utc_or_none(value: datetime | None) -> datetime | None:
    """`as_utc`, or None for a time that leaves the calendar once converted to UTC (year 1
    at +05:00)."""
    try:
        return as_utc(value)
    except OverflowError:
        return None


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether JSON `value` nests more than `limit` containers deep (itself counts as one)."""
    if limit <= 0:
        return True
    children = value.values() if type(value) is dict else value
    for child in children:
        kind = type(child)
        if (kind is dict or kind is list) and _deeper_than(child, limit - 1):
            return True
    return False
