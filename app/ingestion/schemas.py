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


_DESCRIPTIONS = {
    "type": "the call; in a single call's body it may be left out (the path says it)",
    "messageId": "the client's id of the event: a message sent twice is stored once",
    "anonymousId": "the visitor's id before they are known (the tracker's cookie)",
    "userId": "the shop's own id of a known customer",
    "previousId": "alias: the id the visitor had before",
    "groupId": "group: the company or account",
    "event": "track: what happened, e.g. Product Viewed, Checkout Started",
    "name": "page, screen: the page's or screen's name",
    "timestamp": "when it happened (default: when received, corrected by sentAt)",
    "sentAt": "when the client sent it: corrects the client's clock",
    "properties": "track, page, screen: about the event (url, product_id, price...)",
    "traits": "identify, group: about the person (email, phone, city...)",
    "context": "ip, userAgent, page, campaign, consent...",
}
# What each single call needs besides its type (`missing_fields`); a call lacking it is a 400.
# "anonymousId or userId" is said in words: an `anyOf` of `required`s makes client generators
# give up on the whole body's type.
_IDS = "`anonymousId` or `userId`"
_CALL_NEEDS: dict[str, tuple[list[str], str]] = {
    "track": (["event"], f"`event` and {_IDS}"),
    "page": ([], _IDS),
    "screen": ([], _IDS),
    "identify": ([], _IDS),
    "alias": (["previousId", "userId"], "`previousId` and `userId`"),
    "group": (["groupId"], f"`groupId` and {_IDS}"),
}


def _message_schema(call: str | None) -> dict[str, Any]:
    schema = Message.model_json_schema()
    properties = schema["properties"]
    for name, description in _DESCRIPTIONS.items():
        properties[name]["description"] = description
    if call is None:
        schema["title"] = "SegmentMessage"
        schema["description"] = "One event of a batch; `type` says which call it is."
        return schema
    schema["title"] = f"Segment{call.title()}"
    required, needs = _CALL_NEEDS[call]
    schema["description"] = (
        f"A `{call}` call (Segment spec): needs {needs} (else 400). Unknown fields are ignored."
    )
    properties["type"] = {"const": call, "description": _DESCRIPTIONS["type"]}
    properties["writeKey"] = _WRITE_KEY
    schema["required"] = required
    return schema


def ingestion_openapi_schemas() -> dict[str, dict[str, Any]]:
    """The ingestion bodies, as OpenAPI components."""
    batch = {
        "title": "SegmentBatch",
        "type": "object",
        "required": ["batch"],
        "properties": {
            "batch": {"type": "array", "items": {"$ref": "#/components/schemas/SegmentMessage"}},
            "sentAt": {"type": "string", "format": "date-time", "description": "for every event"},
            "context": {"type": "object", "description": "merged into every event's context"},
            "writeKey": _WRITE_KEY,
        },
    }
    schemas = {"SegmentBatch": batch, "SegmentMessage": _message_schema(None)}
    for call in ("track", "page", "screen", "identify", "alias", "group"):
        schema = _message_schema(call)
        schemas[schema["title"]] = schema
    return schemas


def ingestion_body(call: str) -> dict[str, Any]:
    """`openapi_extra=` for an ingestion route (`call`: batch, track, page...): its JSON
    request body (gzip also accepted), a component of `ingestion_openapi_schemas`."""
    schema = {"$ref": f"#/components/schemas/Segment{call.title()}"}
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
        **WRITE_KEY,
    }
