"""From an HTTP body to validated events: size limits, gzip, JSON, per-event validation."""

import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
from crawlerdetect import CrawlerDetect
from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request

from app.errors import AppError, PayloadTooLarge, UnsupportedMediaType
from app.http import header
from app.ingestion.schemas import Message, as_utc, missing_fields
from app.params import EARLIEST, LATEST

ACCEPTED_CONTENT_TYPES = ("application/json", "text/plain", "")


@dataclass(slots=True)
class IngestEvent:
    """A validated event, ready to store. `timestamp` is corrected for client clock skew."""

    message_id: str
    type: str
    name: str | None
    anonymous_id: str | None
    user_id: str | None
    previous_id: str | None
    timestamp: datetime
    original_timestamp: datetime | None
    sent_at: datetime | None
    received_at: datetime
    properties: dict[str, Any]
    traits: dict[str, Any]
    context: dict[str, Any]
    is_bot: bool = False
    lead_id: uuid.UUID | None = field(default=None)

    @property
    def url(self) -> str | None:
        page = self.context.get("page")
        url = page.get("url") if isinstance(page, dict) else None
        url = url or self.properties.get("url")
        return url if isinstance(url, str) else None


@dataclass(slots=True)
class Rejection:
    index: int
    code: str
    message: str


async def read_body(request: Request, max_bytes: int) -> bytes:
    """Read the body, gunzipping as it streams; stop at `max_bytes` so that a gzip bomb
    cannot exhaust memory."""
    content_type = (header(request, b"content-type") or "").split(";")[0].strip().lower()
    if content_type not in ACCEPTED_CONTENT_TYPES:
        raise UnsupportedMediaType(
            f"Send JSON as application/json or text/plain, not {content_type!r}."
        )
    encoding = (header(request, b"content-encoding") or "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported; use gzip or none.",
            code="unsupported_encoding",
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
    if not body.strip():
        raise AppError("The body is empty; send a JSON object.", code="invalid_json")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise AppError(f"The body is not valid JSON: {exc}.", code="invalid_json") from exc


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
    dumped = orjson.dumps(raw)
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

    try:
        sent_at = as_utc(msg.sentAt) or batch_sent_at
        original = as_utc(msg.timestamp or msg.originalTimestamp)
        if original is None:
            timestamp = received_at
        elif sent_at is not None:
            # Segment's skew correction: the client's clock error is receivedAt - sentAt.
            timestamp = original + (received_at - sent_at)
        else:
            timestamp = original
    except OverflowError:
        timestamp = None
    # Out of range, the dates computed from it (contact_by, hold-until) would overflow.
    if timestamp is None or not EARLIEST <= timestamp <= LATEST:
        return Rejection(index, "invalid_event", "the event's time is out of range")
    context = msg.context or {}
    traits = msg.traits or {}
    if msg.type != "identify" and isinstance(context.get("traits"), dict):
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
        anonymous_id=msg.anonymousId,
        user_id=msg.userId,
        previous_id=msg.previousId,
        timestamp=timestamp,
        original_timestamp=original,
        sent_at=sent_at,
        received_at=received_at,
        properties=properties,
        traits=traits,
        context=context,
        is_bot=isinstance(user_agent, str) and is_crawler(user_agent),
    )
