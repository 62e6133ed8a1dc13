"""`DELETE /v1/people`: who to erase, and what was."""

from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.params import Text

# No stored identifier holds a NUL (ingestion refuses them), and PostgreSQL cannot compare one.
Id = Annotated[Text, Field(min_length=1, max_length=255)]


class PersonIn(BaseModel):
    """The person to erase, by any of their identifiers (at least one). Several identifiers
    erase every person any of them names."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"userId": "u-123"}, {"email": "anna@example.com"}]},
    )

    userId: Id | None = None
    anonymousId: Id | None = None
    email: Annotated[Text, Field(min_length=3, max_length=255)] | None = Field(
        None, description="compared trimmed and case-insensitively"
    )

    @model_validator(mode="after")
    def _one_identifier(self) -> Self:
        if not (self.userId or self.anonymousId or self.email):
            raise ValueError("name the person by 'userId', 'anonymousId' or 'email'")
        return self


class ErasedCounts(BaseModel):
    leads: int = Field(description="lead rows, merged ones included")
    events: int
    identities: int = Field(description="anonymousIds and userIds the person was known by")
    contacts: int = Field(description="contacts the sales team recorded")
    timers: int = Field(description="first-contact and cart timers")
    webhook_messages: int = Field(
        description="webhook messages about the person, sent or pending, with their deliveries"
    )
    repairs: int = Field(description="pending lead repairs")


class ErasureOut(BaseModel):
    erased: ErasedCounts
    suppressed_identifiers: int = Field(
        description="identifiers newly suppressed: later events carrying them are dropped"
    )
