"""The Segment HTTP tracking API message, validated one event at a time."""

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MessageType = Literal["track", "page", "screen", "identify", "alias", "group"]


def property_number(value: Any) -> float | None:
    """A property's value as a number, as shops send them: 499, 499.5 and "499" alike; true,
    false, NaN, infinities and anything else are not numbers."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, int | float | str) else None
    except (ValueError, OverflowError):  # "abc"; an int too large for a float
        return None
    # "NaN" and "Infinity" parse, but add nothing a shop means (and NaN would stick to sums).
    return number if number is not None and math.isfinite(number) else None


Id = Annotated[str, Field(min_length=1, max_length=255)]


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
