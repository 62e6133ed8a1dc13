"""An audience's filters over the lead profile: validated (pydantic, the API's 4xx details),
and compiled into a plain predicate that decides membership from a lead row already in hand
(no query), plus the next moment at which time alone would change the answer.

Pure: no I/O, no clock (the time is a parameter)."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.domain.lead_rows import LeadRow
from app.domain.profile import time_on_site
from app.params import Text

Temperature = Literal["cold", "warm", "hot"]
Status = Literal["new", "contacted", "qualified", "won", "lost"]
MAX_HOURS = 24 * 366 * 2  # two years: longer than any event retention

Count = Field(default=None, ge=0, le=1_000_000_000)
Amount = Field(default=None, ge=0, le=1e12, allow_inf_nan=False)
Hours = Field(default=None, ge=1, le=MAX_HOURS)


class InterestFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: Text = Field(min_length=1, max_length=100, description="as the tracker sends it")
    min_views: int = Field(1, ge=1, le=1_000_000, description="views and adds of the category")


class AudienceFilters(BaseModel):
    """Every given filter must hold (AND); a list is any of its values (OR). Left out: no
    condition. Ranges are inclusive. Durations are in hours, against the time of evaluation."""

    model_config = ConfigDict(extra="forbid")

    temperature: list[Temperature] | None = Field(None, min_length=1)
    score_min: float | None = Amount
    score_max: float | None = Amount
    interests: list[InterestFilter] | None = Field(
        None, min_length=1, max_length=20, description="every one of these categories"
    )
    any_category_min_views: int | None = Field(
        None, ge=1, le=1_000_000, description="some one category viewed at least this often"
    )
    visits_min: int | None = Count
    visits_max: int | None = Count
    time_on_site_min_seconds: float | None = Amount
    time_on_site_max_seconds: float | None = Amount
    cart: Literal["empty", "has_items"] | None = None
    cart_value_min: float | None = Amount
    cart_value_max: float | None = Amount
    cart_updated_within_hours: int | None = Field(
        None, ge=1, le=MAX_HOURS, description="an item added or removed within this many hours"
    )
    orders_min: int | None = Count
    orders_max: int | None = Count
    came_back_after_order: bool | None = Field(
        None, description="a visit started after the last order"
    )
    city: list[Text] | None = Field(None, min_length=1, max_length=100, description="any of")
    subscribed: bool | None = None
    identified: bool | None = None
    has_email: bool | None = None
    has_phone: bool | None = None
    last_seen_within_hours: int | None = Hours
    last_seen_not_within_hours: int | None = Hours
    status: list[Status] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        for low, high in (
            ("score_min", "score_max"),
            ("visits_min", "visits_max"),
            ("time_on_site_min_seconds", "time_on_site_max_seconds"),
            ("cart_value_min", "cart_value_max"),
            ("orders_min", "orders_max"),
        ):
            a, b = getattr(self, low), getattr(self, high)
            if a is not None and b is not None and a > b:
                raise ValueError(f"{low} ({a}) is above {high} ({b}): no lead could match.")
        if self.city is not None and any(not c.strip() or len(c) > 200 for c in self.city):
            raise ValueError("city: each name is 1 to 200 characters.")
        within, not_within = self.last_seen_within_hours, self.last_seen_not_within_hours
        if within is not None and not_within is not None and within <= not_within:
            raise ValueError(
                "last_seen_within_hours must be above last_seen_not_within_hours: no lead could"
                " match."
            )
        return self


Check = Callable[[LeadRow], bool]
Anchor = Callable[[LeadRow], datetime | None]


def _cart_time(key: str) -> Anchor:
    def anchor(p: LeadRow) -> datetime | None:
        value = (p["cart"] or {}).get(key)
        return datetime.fromisoformat(value) if isinstance(value, str) else None

    return anchor


def _last_seen(p: LeadRow) -> datetime | None:
    return p["last_seen_at"]


def _at_least(get: Callable[[LeadRow], float], bound: float) -> Check:
    def check(p: LeadRow) -> bool:
        return get(p) >= bound

    return check


def _at_most(get: Callable[[LeadRow], float], bound: float) -> Check:
    def check(p: LeadRow) -> bool:
        return get(p) <= bound

    return check


def _one_of(get: Callable[[LeadRow], object], values: frozenset[object]) -> Check:
    def check(p: LeadRow) -> bool:
        return get(p) in values

    return check


def _cart(p: LeadRow) -> dict[str, Any]:
    return p["cart"] or {}


def _interest(category: str) -> Callable[[LeadRow], float]:
    return lambda p: float((p["interests"] or {}).get(category, 0))


def _came_back(p: LeadRow) -> bool:
    ordered, visit = _cart_time("ordered_at")(p), p["visit_started_at"]
    return ordered is not None and visit is not None and visit > ordered


def _checks(f: AudienceFilters) -> list[Check]:  # noqa: C901 (one branch per filter)
    out: list[Check] = []
    ranges: list[tuple[Callable[[LeadRow], float], float | None, float | None]] = [
        (lambda p: p["score"], f.score_min, f.score_max),
        (lambda p: p["visits"], f.visits_min, f.visits_max),
        (time_on_site, f.time_on_site_min_seconds, f.time_on_site_max_seconds),
        (lambda p: float(_cart(p).get("value") or 0), f.cart_value_min, f.cart_value_max),
        (lambda p: p["orders"], f.orders_min, f.orders_max),
    ]
    for get, low, high in ranges:
        if low is not None:
            out.append(_at_least(get, low))
        if high is not None:
            out.append(_at_most(get, high))
    if f.temperature is not None:
        out.append(_one_of(lambda p: p["temperature"], frozenset(f.temperature)))
    if f.status is not None:
        out.append(_one_of(lambda p: p["status"], frozenset(f.status)))
    if f.city is not None:
        cities = frozenset[object](c.strip().casefold() for c in f.city)
        out.append(_one_of(lambda p: (p["city"] or "").casefold(), cities))
    for interest in f.interests or ():
        out.append(_at_least(_interest(interest.category), interest.min_views))
    if f.any_category_min_views is not None:
        most = lambda p: float(max((p["interests"] or {}).values(), default=0))  # noqa: E731
        out.append(_at_least(most, f.any_category_min_views))
    flags: list[tuple[Callable[[LeadRow], object], bool | None]] = [
        (lambda p: float(_cart(p).get("item_count") or 0) > 0, _has_items(f.cart)),
        (_came_back, f.came_back_after_order),
        (lambda p: bool(p["subscribed"]), f.subscribed),
        (lambda p: bool(p["identified"]), f.identified),
        (lambda p: bool((p["contacts"] or {}).get("email")), f.has_email),
        (lambda p: bool((p["contacts"] or {}).get("phone")), f.has_phone),
    ]
    for get_flag, wanted in flags:
        if wanted is not None:
            out.append(_one_of(get_flag, frozenset([wanted])))
    return out


def _has_items(cart: str | None) -> bool | None:
    return None if cart is None else cart == "has_items"


@dataclass(frozen=True, slots=True)
class Clock:
    """A condition on time: `anchor` + `span` is later than the time of evaluation (within),
    or not (not within; no anchor: never seen, so not within)."""

    anchor: Anchor
    span: timedelta
    within: bool

    def holds(self, p: LeadRow, now: datetime) -> bool:
        at = self.anchor(p)
        if at is None:
            return not self.within
        return (now < at + self.span) == self.within


def _clocks(f: AudienceFilters) -> list[Clock]:
    out = []
    if f.last_seen_within_hours is not None:
        out.append(Clock(_last_seen, timedelta(hours=f.last_seen_within_hours), True))
    if f.last_seen_not_within_hours is not None:
        out.append(Clock(_last_seen, timedelta(hours=f.last_seen_not_within_hours), False))
    if f.cart_updated_within_hours is not None:
        out.append(
            Clock(_cart_time("updated_at"), timedelta(hours=f.cart_updated_within_hours), True)
        )
    return out


@dataclass(frozen=True, slots=True)
class CompiledAudience:
    id: uuid.UUID
    site_id: uuid.UUID
    name: str
    checks: tuple[Check, ...]
    clocks: tuple[Clock, ...]

    def matches(self, p: LeadRow, now: datetime) -> bool:
        if p["merged_into_id"] is not None:
            return False
        return all(check(p) for check in self.checks) and all(c.holds(p, now) for c in self.clocks)

    def boundary(self, p: LeadRow, now: datetime) -> datetime | None:
        """The next moment after `now` at which time alone changes whether the lead matches
        (a time condition flips while every other one holds); None: none will."""
        if not self.clocks or p["merged_into_id"] is not None:
            return None
        if not all(check(p) for check in self.checks):
            return None
        moments = []
        for clock in self.clocks:
            at = clock.anchor(p)
            if at is not None and at + clock.span > now:
                moments.append(at + clock.span)
        return min(moments, default=None)


def compile_audience(
    audience_id: uuid.UUID, site_id: uuid.UUID, name: str, filters: dict[str, Any]
) -> CompiledAudience:
    """An audience as stored (its filters were validated when saved)."""
    parsed = AudienceFilters.model_validate(filters)
    return CompiledAudience(
        audience_id, site_id, name, tuple(_checks(parsed)), tuple(_clocks(parsed))
    )
