"""The audiences API's shapes."""

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.audiences.filters import AudienceFilters
from app.params import Text


def _name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("name must not be blank.")
    return value


class AudienceIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Fridges, not ready",
                    "filters": {
                        "temperature": ["warm"],
                        "interests": [{"category": "Fridges", "min_views": 3}],
                        "orders_max": 0,
                    },
                }
            ]
        },
    )

    name: Text = Field(min_length=1, max_length=200)
    filters: AudienceFilters = Field(default_factory=AudienceFilters)

    _strip = field_validator("name")(_name)


class AudienceUpdate(BaseModel):
    """What to change: the name, the filters (the members are then computed again, and
    leads that enter or leave are sent as webhooks), or both."""

    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(None, min_length=1, max_length=200)
    filters: AudienceFilters | None = None

    @field_validator("name")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return None if value is None else _name(value)


class AudienceOut(BaseModel):
    id: uuid.UUID
    name: str
    filters: dict[str, Any] = Field(description="the filters as saved (AudienceFilters)")
    state: Literal["computing", "ready"] = Field(
        description="computing: the members are being computed after a change (the count grows)"
    )
    members: int = Field(description="leads in the audience now")
    created_at: datetime
    updated_at: datetime


class AudienceList(BaseModel):
    data: list[AudienceOut]


class AudienceMemberOut(BaseModel):
    lead_id: uuid.UUID
    entered_at: datetime
    score: float
    temperature: Literal["cold", "warm", "hot"]
    status: str
    identified: bool
    email: str | None
    phone: str | None
    name: str | None
    city: str | None
    country: str | None
    visits: int
    orders: int
    cart_value: float
    top_interests: list[str]
    last_seen_at: datetime | None


class AudienceMemberPage(BaseModel):
    data: list[AudienceMemberOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")
