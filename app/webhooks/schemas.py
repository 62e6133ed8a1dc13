from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.params import Text
from app.webhooks.outbox import EVENT_TYPES

EventType = Literal[
    "lead.hot",
    "lead.temperature_changed",
    "lead.identified",
    "lead.first_contact_overdue",
    "lead.first_contact_escalated",
    "cart.abandoned",
    "cart.follow_up",
]
assert set(EventType.__args__) == set(EVENT_TYPES)  # type: ignore[attr-defined]


class WebhookEndpointCreate(BaseModel):
    url: Text = Field(max_length=2048, description="http(s) URL receiving signed POSTs")
    event_types: list[EventType] = Field(default_factory=list, description="empty: every type")
    description: Text | None = Field(None, max_length=500)
    enabled: bool = True


class WebhookEndpointUpdate(BaseModel):
    url: Text | None = Field(None, max_length=2048)
    event_types: list[EventType] | None = None
    description: Text | None = Field(None, max_length=500)
    enabled: bool | None = Field(None, description="true also undoes an automatic disable")


class WebhookEndpointOut(BaseModel):
    id: str
    url: str
    event_types: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    consecutive_failures: int
    failing_since: datetime | None = Field(
        description="the first failure of the current run of failed attempts (none: healthy);"
        " the endpoint is disabled once the run lasts the configured hours"
    )
    previous_secret_until: datetime | None = Field(
        description="during a rotation: until then the old secret signs too"
    )
    created_at: datetime
    updated_at: datetime


class WebhookEndpointWithSecret(WebhookEndpointOut):
    secret: str = Field(description="whsec_...: shown only now")


class MessageQueued(BaseModel):
    message_id: str = Field(description="the webhook-id of every delivery of the message")
    deliveries: int


class DeliveryAttemptOut(BaseModel):
    id: int
    message_id: str
    event_type: str
    delivery_status: str
    attempted_at: datetime
    status_code: int | None
    succeeded: bool
    response_body: str | None
    error: str | None
    duration_ms: float
