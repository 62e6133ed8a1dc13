"""The leads API's shapes: a lead in a list, a lead's card, a status change, a recorded contact,
the funnel and speed to lead."""

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.params import Text, UtcDateTime

Temperature = Literal["cold", "warm", "hot"]
Status = Literal["new", "contacted", "qualified", "won", "lost"]
LostReason = Literal[
    "not_our_profile",
    "bought_elsewhere",
    "bought_from_competitor",
    "waited_too_long",
    "nothing_in_budget",
    "spam",
    "other",
]
Sort = Literal["score", "recent"]

TEMPERATURES: tuple[str, ...] = ("cold", "warm", "hot")
STATUSES: tuple[str, ...] = ("new", "contacted", "qualified", "won", "lost")
LOST_REASONS: tuple[str, ...] = LostReason.__args__  # type: ignore[attr-defined]


class Interest(BaseModel):
    category: str
    views: int


class CartSummary(BaseModel):
    item_count: float
    value: float


class Owner(BaseModel):
    """The person who works the lead."""

    id: uuid.UUID
    name: str
    email: str


class AtRisk(BaseModel):
    """The lead waited too long: the escalation ladder's last step marked it."""

    reason: Literal["waited_too_long"]
    since: datetime


AT_RISK = "the lead was marked at risk by the escalation ladder in its current hot spell"


class LeadSummary(BaseModel):
    """A lead as a list shows it: who, how hot, what they look at now, where they are in sales."""

    id: uuid.UUID
    score: float
    temperature: Temperature
    status: Status
    lost_reason: LostReason | None
    identified: bool
    contacts: dict[str, str]
    city: str | None
    country: str | None
    top_interests: list[Interest]
    last_seen_at: datetime | None
    last_url: str | None
    visits: int
    time_on_site_seconds: float
    cart: CartSummary
    became_hot_at: datetime | None
    contact_by: datetime | None
    first_contacted_at: datetime | None
    updated_at: datetime
    rule_set_version: int | None
    owner: Owner | None = Field(description="who works the lead; null: nobody yet")
    owner_assigned_at: datetime | None
    at_risk: AtRisk | None = Field(description=AT_RISK)


class LeadPage(BaseModel):
    data: list[LeadSummary]
    next_cursor: str | None


class Why(BaseModel):
    """The numbers a breakdown line's points come from; which are set depends on its kind.

    - behaviour: `count` events x `points_each` = `total`. With a `half_life` the rule's
      decayed total was `value_at_last_event` at its last counted event, `age` seconds ago,
      and `decayed` = value_at_last_event x 2^(-age / half_life) now (without one, `decayed`
      = `total`). The points are `decayed` held within `cap` (`capped`: it was).
    - fit: the lead's `value` of `field` matched `option` (match: the first option that
      does; contacts: the channels left) or fell in the band [`band_min`, `band_max`)
      (range), which gives `coefficient`; points = `coefficient` x `weight`.
    - hard: `count` events made the sequence; the lead is hot until `hot_until`.
    - limit: the rules add up to `rules_total`, outside 0..`limit` (max_score); the line's
      points bring the sum back to the score."""

    count: int | None = Field(None, description="behaviour, hard: events counted")
    points_each: float | None = Field(None, description="behaviour: the rule's points")
    frequency: Literal["once_per_lead", "once_per_visit", "every_time"] | None = None
    total: float | None = Field(None, description="behaviour: count x points_each")
    half_life: float | None = Field(None, description="behaviour: seconds; null: no decay")
    value_at_last_event: float | None = Field(
        None, description="behaviour with decay: the decayed total at the last counted event"
    )
    age: float | None = Field(None, description="behaviour with decay: seconds since then")
    decayed: float | None = Field(None, description="behaviour: the total now, before the cap")
    cap: float | None = Field(None, description="behaviour: at most this many points (absolute)")
    capped: bool | None = Field(None, description="behaviour: the cap bounds the points")
    criterion: Literal["match", "range", "contacts"] | None = Field(
        None, description="fit: the kind of criterion"
    )
    field: str | None = Field(None, description="fit: the profile field, e.g. city")
    value: str | float | list[str] | None = Field(
        None, description="fit: the lead's value (interests, contacts: a list)"
    )
    option: list[str] | None = Field(None, description="fit: the matching option's values")
    band_min: float | None = Field(None, description="fit, range: the band's min (inclusive)")
    band_max: float | None = Field(None, description="fit, range: the band's max (exclusive)")
    coefficient: float | None = Field(None, description="fit: the share of the weight, 0 to 1")
    weight: float | None = Field(None, description="fit: the rule's weight")
    rules_total: float | None = Field(None, description="limit: what the rules add up to")
    limit: float | None = Field(None, description="limit: the bound the score is held to")


class BreakdownItem(BaseModel):
    """One line of a score: a rule's points, or the score's bound (`kind` limit) when the
    rules add up to more than max_score or less than 0. The lines add up to the score
    (each rounded to 0.01)."""

    rule_id: str
    kind: Literal["behaviour", "fit", "hard", "limit"]
    label: str
    points_raw: float
    points: float
    events: int
    message_ids: list[str]
    hot_until: datetime | None
    why: Why
    text: str = Field(
        description="the line in words, e.g. \"City: Kazan matched option 'Kazan' x 0.8 x"
        ' weight 20 = 16"'
    )


class TimelineEvent(BaseModel):
    message_id: str
    type: str
    name: str | None
    timestamp: datetime
    url: str | None
    properties: dict[str, Any]


class EscalationStep(BaseModel):
    """A step of the lead's escalation ladder (a timer row)."""

    step: Literal[
        "assign_at_opening",
        "remind_owner",
        "hand_over",
        "alert_admins",
        "mark_at_risk",
        "first_contact",
    ]
    mark_minutes: float = Field(description="minutes after the lead's clock started")
    due_at: datetime
    status: Literal["pending", "fired", "cancelled"] = Field(
        description="cancelled: no longer needed (a contact was recorded, the status moved on)"
    )
    fired_at: datetime | None


class LeadDetail(BaseModel):
    """A lead's card: the profile, the score now and why, the recent timeline, sales status."""

    id: uuid.UUID
    merged_ids: list[uuid.UUID]
    # The score evaluated now (decay applied, active rule set) and as stored at the last event.
    score: float
    temperature: Temperature
    score_at_last_event: float
    temperature_at_last_event: Temperature
    rule_set_version: int | None
    active_rule_set_version: int
    rule_set_outdated: bool
    breakdown: list[BreakdownItem]
    status: Status
    status_changed_at: datetime | None
    lost_reason: LostReason | None
    note: str | None
    became_hot_at: datetime | None
    contact_by: datetime | None
    first_contacted_at: datetime | None
    identified: bool
    user_id: str | None
    contacts: dict[str, str]
    traits: dict[str, Any]
    city: str | None
    country: str | None
    interests: dict[str, int]
    products_viewed: list[dict[str, Any]]
    visits: int
    page_views: int
    events_count: int
    time_on_site_seconds: float
    cart: dict[str, Any]
    orders: int
    revenue: float
    subscribed: bool | None
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    last_url: str | None
    created_at: datetime
    updated_at: datetime
    timeline: list[TimelineEvent]
    escalation: list[EscalationStep] = Field(
        description="the escalation ladder of the current hot spell, in order"
    )
    at_risk: AtRisk | None = Field(description=AT_RISK)
    owner: Owner | None = Field(description="who works the lead; null: nobody yet")
    owner_assigned_at: datetime | None


class LeadUpdate(BaseModel):
    """A move through the sales funnel: `lost` needs a `lost_reason`, nothing else takes one."""

    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    lost_reason: LostReason | None = None
    note: Text | None = Field(None, max_length=2000)


class Handover(BaseModel):
    """To whom a lead goes: an active manager or admin of the site."""

    model_config = ConfigDict(extra="forbid")

    user_id: uuid.UUID


class OwnerSet(BaseModel):
    """An admin's reassignment: a person of the site, or null to leave the lead unowned."""

    model_config = ConfigDict(extra="forbid")

    user_id: uuid.UUID | None


class FunnelStep(BaseModel):
    step: Literal["first_touch", "lead", "contacted", "qualified", "won"]
    count: int
    # Share of the previous step's leads that reached this one (null for the first step, or
    # when the previous step is empty).
    conversion_rate: float | None


class TemperatureMove(BaseModel):
    from_: Temperature = Field(serialization_alias="from")
    to: Temperature
    leads: int = Field(description="moves of this kind in the period (a lead once per move)")


class FunnelStats(BaseModel):
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    leads: int
    by_temperature: dict[str, int]
    shares: dict[str, float | None] = Field(
        description="the period's leads by the site's own thresholds: `ready` (hot), "
        "`interested` (warm) and `cold`, as shares of `leads` (null when there are none)"
    )
    moves: list[TemperatureMove] = Field(
        description="leads of the site (whenever first seen) that moved from one temperature to"
        " another in the period: by events, decay, a new rule set"
    )
    by_status: dict[str, int]
    funnel: list[FunnelStep]
    overall_conversion_rate: float | None
    lost_by_reason: dict[str, int]
    spam: int
    notes: list[str]


class ContactIn(BaseModel):
    channel: Literal["phone", "email", "messenger", "chat", "other"]
    by: Text | None = Field(None, max_length=200, description="who made the contact")
    note: Text | None = Field(None, max_length=5000)
    at: UtcDateTime | None = Field(None, description="when (default: now)")


class ContactOut(BaseModel):
    id: str
    lead_id: str
    channel: str
    by: str | None
    note: str | None
    at: datetime
    first_contacted_at: datetime | None
    seconds_to_first_contact: float | None
    lead_status: str


class SpeedFigures(BaseModel):
    hot_leads: int = Field(description="leads that turned hot in [from, to)")
    contacted: int
    median_seconds: float | None = Field(
        description=(
            "hot -> first contact, contacted leads (linear interpolation between closest "
            "ranks). Counted from per-day histograms: exact for waits in whole seconds under "
            "10 minutes; beyond, each wait counts as the upper bound of its bucket (10 s wide "
            "up to an hour, then at most about 2% of the wait)"
        )
    )
    p90_seconds: float | None = Field(description="as median_seconds, the 90th percentile")
    within_minutes: dict[str, float] = Field(
        description=(
            "share of the hot leads contacted within each mark (minutes); exact for marks in "
            "whole minutes up to 4 hours (a bucket's bound)"
        )
    )
    won: int | None = Field(description="of the hot leads, how many are won (with by=owner)")
    lost: int | None = Field(description="of the hot leads, how many are lost (with by=owner)")
    lost_by_reason: dict[str, int] | None = Field(
        description="the lost ones by their reason (with by=owner)"
    )
    overdue_now: int = Field(description="past contact_by, nobody has contacted them")


class OwnerSpeed(SpeedFigures):
    """One person's figures: the hot leads they own now."""

    owner: Owner | None = Field(description="null: the leads nobody owns")
    owner_id: uuid.UUID | None


class SpeedToLead(SpeedFigures):
    """The team's (the whole site's) figures, and with `by=owner` each owner's."""

    from_: datetime = Field(serialization_alias="from")
    to: datetime
    by_owner: list[OwnerSpeed] | None = Field(
        None, description="with by=owner: the figures per owner (null owner: unowned leads)"
    )
