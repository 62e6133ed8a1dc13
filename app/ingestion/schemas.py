"""The Segment HTTP tracking API message, validated one event at a time."""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

MessageType = Literal["track", "page", "screen", "identify", "alias", "group"]


def _id_to_str(value: Any) -> Any:
    """Segment accepts numeric ids and treats them as strings."""
    if isinstance(value, bool):
        return value  # let validation reject it
    if isinstance(value, int | float):
        return str(value)
    return value


def property_number(value: Any) -> float | None:
    """A property's value as a number, as shops send them: 499, 499.5 and "499" alike; true,
    false and anything else are not numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


Id = Annotated[str, BeforeValidator(_id_to_str), Field(min_length=1, max_length=255)]


class Message(BaseModel):
    """One Segment message. Unknown top-level fields (integrations, channel...) are ignored."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

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

    @model_validator(mode="after")
    def _required_fields(self) -> "Message":
        if self.type == "track" and not self.event:
            raise ValueError("a track call needs 'event', the name of what happened")
        if self.type == "alias":
            if not self.previousId or not self.userId:
                raise ValueError("an alias call needs both 'previousId' and 'userId'")
        elif not self.anonymousId and not self.userId:
            raise ValueError("every call needs 'anonymousId' or 'userId'")
        if self.type == "group" and not self.groupId:
            raise ValueError("a group call needs 'groupId'")
        return self


class BatchEnvelope(BaseModel):
    model_config = ConfigDict(extra="ignore")

    batch: list[Any]
    sentAt: datetime | None = None
    context: dict[str, Any] | None = None


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
