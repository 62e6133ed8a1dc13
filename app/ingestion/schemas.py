"""The Segment HTTP tracking API message, validated one event at a time, and the ingestion
routes' answer and OpenAPI documents."""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.openapi import WRITE_KEY

MessageType = Literal["track", "page", "screen", "identify", "alias", "group"]


# An empty id is no id (`missing_fields` and the event builder read it so): RudderStack's
# browser SDK sends `"userId": ""` for every visitor it has not identified yet.
Id = Annotated[str, Field(max_length=255)]


class Message(BaseModel):
    """One Segment message. Unknown top-level fields (integrations, channel...) are ignored.
    Numeric ids are taken as strings, as Segment does (booleans are not numbers). Validation
    runs without Python callbacks, which would dominate its cost: which fields a call needs
    is `missing_fields`."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    type: MessageType
    messageId: Id | None = None
    anonymousId: Id | None = None
    userId: Id | None = None
    previousId: Id | None = None
    groupId: Id | None = None
    event: str | None = Field(None, min_length=1, max_length=255)
    name: str | None = Field(None, max_length=255)
    category: str | None = Field(None, max_length=255)
    timestamp: datetime | None = None
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = None
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None


def missing_fields(msg: Message) -> str | None:
    """What a valid message of its type still lacks, or None."""
    if msg.type == "track" and not msg.event:
        return "a track call needs 'event', the name of what happened"
    if msg.type == "alias":
        if not msg.previousId or not msg.userId:
            return "an alias call needs both 'previousId' and 'userId'"
    elif not msg.anonymousId and not msg.userId:
        return "every call needs 'anonymousId' or 'userId'"
    if msg.type == "group" and not msg.groupId:
        return "a group call needs 'groupId'"
    return None


def as_utc(value: datetime | None) -> datetime | None:
    """Timestamps without a zone are taken as UTC, as Segment does."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class RejectedEvent(BaseModel):
    index: int
    code: str
    message: str


class IngestResponse(BaseModel):
    success: bool = True
    accepted: int
    duplicates: int
    rejected: int
    bots: int
    errors: list[RejectedEvent]


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
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
        **WRITE_KEY,
    }
