"""The webhook API's shapes, and the messages webhook consumers receive."""

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.params import Text
from app.webhooks.outbox import EVENT_TYPES, WEBHOOK_TEST

EventType = Literal[
    "lead.hot",
    "lead.temperature_changed",
    "lead.identified",
    "lead.first_contact_overdue",
    "lead.first_contact_escalated",
    "lead.reassigned",
    "lead.at_risk",
    "cart.abandoned",
    "cart.follow_up",
    "audience.entered",
    "audience.left",
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


# --- What webhook consumers receive ------------------------------------------------------------
# The OpenAPI document's `webhooks` section is made from these; every message the tests make is
# checked against them (tests/webhooks/conftest.py), so the payload builders
# (app/webhooks/payloads.py, consumer.py, timers.py, service.py) cannot drift from them.

Temperature = Literal["cold", "warm", "hot"]
LeadStatus = Literal["new", "contacted", "qualified", "won", "lost"]


class _Payload(BaseModel):
    # A field a builder adds that is not documented here fails the payload tests.
    model_config = ConfigDict(extra="forbid")


class TopRule(_Payload):
    rule_id: str
    label: str | None
    kind: Literal["behaviour", "fit", "hard"]
    points: float


class CartItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    product_id: str
    quantity: float
    name: str | None = None
    category: str | None = None
    price: float | None = None


class Cart(BaseModel):
    """The lead's cart; empty when it has none."""

    model_config = ConfigDict(extra="allow")

    items: dict[str, CartItem] | None = Field(
        None, description="by product id (left out when the payload had to be cut)"
    )
    item_count: float | None = None
    value: float | None = Field(None, description="the sum of price x quantity")
    updated_at: datetime | None = None
    ordered_at: datetime | None = Field(None, description="when the cart was ordered")


class LeadOwner(_Payload):
    """The person who works the lead (assigned when it turned hot, or by a claim, a handover
    or an admin)."""

    id: uuid.UUID
    name: str
    email: str


class LeadData(_Payload):
    """The lead as it is when the event is sent; bounded in size: when it would be too large,
    interests and cart items are cut to 20 (then contacts to 10 and the cart's items left
    out) and `truncated` is true."""

    lead_id: uuid.UUID
    site_id: uuid.UUID
    score: float
    temperature: Temperature
    status: LeadStatus
    identified: bool = Field(description="the lead left a contact")
    became_hot_at: datetime | None
    contact_by: datetime | None = Field(description="first contact promised by then")
    first_contacted_at: datetime | None
    contacts: dict[str, str] = Field(description="channel (phone, email, ...) to value")
    interests: dict[str, float] = Field(description="category to views")
    cart: Cart
    last_url: str | None
    city: str | None
    country: str | None
    user_id: str | None
    owner: LeadOwner | None = Field(description="who works the lead; null: nobody yet")
    top_rules: list[TopRule] = Field(description="what contributes most to the score")
    truncated: bool = Field(False, description="present (true) when the payload was cut")
    products_viewed: None = Field(None, description="present (null) when the payload was cut")


class LeadChangeData(LeadData):
    previous_temperature: Temperature | None = Field(description="null: a new lead")


LadderStep = Literal[
    "assign_at_opening", "remind_owner", "hand_over", "alert_admins", "mark_at_risk"
]


class FirstContactData(LeadData):
    """A step of the site's escalation ladder (`GET /v1/team/settings`)."""

    step: LadderStep = Field(description="the ladder's step that sent it")
    mark_minutes: float = Field(
        description="the step's mark, minutes after the lead's clock started (when it turned"
        " hot, or the next opening)"
    )
    minutes_waiting: float = Field(description="minutes since the lead turned hot")
    notify: list[uuid.UUID] = Field(
        description="the people to alert, by user id (the owner; the old and the new owner;"
        " the admins): notification channels deliver the message to exactly these"
    )


class ReassignedData(FirstContactData):
    previous_owner: LeadOwner | None = Field(
        description="who owned the lead before (null: nobody, it waited for the opening)"
    )


class AtRiskData(FirstContactData):
    at_risk_reason: Literal["waited_too_long"]


class CartFollowUpData(LeadData):
    follow_up: int = Field(description="which follow-up this is, from 1")
    of: int = Field(description="how many follow-ups there are")


class AudienceRef(_Payload):
    id: uuid.UUID
    name: str


class AudienceChangeData(LeadData):
    audience: AudienceRef = Field(description="the audience the lead entered or left")


class WebhookTestData(_Payload):
    endpoint_id: uuid.UUID
    message: str


class _Event(_Payload):
    timestamp: datetime = Field(description="when the message was queued")


class LeadHotEvent(_Event):
    """A lead turned hot: contact them before `data.contact_by`."""

    type: Literal["lead.hot"]
    data: LeadChangeData


class LeadTemperatureChangedEvent(_Event):
    """A lead's temperature changed (a new lead is reported unless it starts cold)."""

    type: Literal["lead.temperature_changed"]
    data: LeadChangeData


class LeadIdentifiedEvent(_Event):
    """A lead left a contact for the first time."""

    type: Literal["lead.identified"]
    data: LeadChangeData


class LeadFirstContactOverdueEvent(_Event):
    """A hot lead has not been contacted within the first-contact window."""

    type: Literal["lead.first_contact_overdue"]
    data: FirstContactData


class LeadFirstContactEscalatedEvent(_Event):
    """A hot lead is still not contacted at a later mark: escalate."""

    type: Literal["lead.first_contact_escalated"]
    data: FirstContactData


class LeadReassignedEvent(_Event):
    """The ladder gave the lead to a manager on duty: handed over from an owner who did not
    contact it in time, or assigned at the next opening (`previous_owner` null). `owner` is
    the new owner."""

    type: Literal["lead.reassigned"]
    data: ReassignedData


class LeadAtRiskEvent(_Event):
    """A hot lead still not contacted at the ladder's last mark: at risk of being lost
    (`waited_too_long`); the lead shows `at_risk` in the leads API."""

    type: Literal["lead.at_risk"]
    data: AtRiskData


class CartAbandonedEvent(_Event):
    """A cart was left without an order."""

    type: Literal["cart.abandoned"]
    data: LeadData


class CartFollowUpEvent(_Event):
    """A day to follow an abandoned cart up (the lead has not unsubscribed)."""

    type: Literal["cart.follow_up"]
    data: CartFollowUpData


class AudienceEnteredEvent(_Event):
    """A lead now matches a saved audience's filters (an event, or time, moved it in)."""

    type: Literal["audience.entered"]
    data: AudienceChangeData


class AudienceLeftEvent(_Event):
    """A lead no longer matches a saved audience's filters (an event, decay or time moved it
    out, or the audience was edited)."""

    type: Literal["audience.left"]
    data: AudienceChangeData


class WebhookTestEvent(_Event):
    """Sent by `POST /v1/webhooks/{endpoint_id}/test`, to that endpoint only."""

    type: Literal["webhook.test"]
    data: WebhookTestData


WEBHOOK_EVENTS: dict[str, type[_Event]] = {
    "lead.hot": LeadHotEvent,
    "lead.temperature_changed": LeadTemperatureChangedEvent,
    "lead.identified": LeadIdentifiedEvent,
    "lead.first_contact_overdue": LeadFirstContactOverdueEvent,
    "lead.first_contact_escalated": LeadFirstContactEscalatedEvent,
    "lead.reassigned": LeadReassignedEvent,
    "lead.at_risk": LeadAtRiskEvent,
    "cart.abandoned": CartAbandonedEvent,
    "cart.follow_up": CartFollowUpEvent,
    "audience.entered": AudienceEnteredEvent,
    "audience.left": AudienceLeftEvent,
    "webhook.test": WebhookTestEvent,
}
assert set(WEBHOOK_EVENTS) == {*EVENT_TYPES, WEBHOOK_TEST}

WebhookEvent = Annotated[
    LeadHotEvent
    | LeadTemperatureChangedEvent
    | LeadIdentifiedEvent
    | LeadFirstContactOverdueEvent
    | LeadFirstContactEscalatedEvent
    | LeadReassignedEvent
    | LeadAtRiskEvent
    | CartAbandonedEvent
    | CartFollowUpEvent
    | AudienceEnteredEvent
    | AudienceLeftEvent
    | WebhookTestEvent,
    Field(discriminator="type"),
]
