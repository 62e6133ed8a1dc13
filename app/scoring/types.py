"""The scoring engine's types: what the compiler produces (a compiled rule set), what the
engine reads (events, lead facts) and what it answers (a score result with its breakdown).
Only data: the compiler, the engine and the hard rules all import it, and it imports none
of them."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Temperature = Literal["cold", "warm", "hot"]


# ScoringEvent and LeadFacts are built once per ingested event: plain (not frozen) slotted
# dataclasses, whose __init__ is much faster (frozen ones set each field through
# object.__setattr__). Treat them as values all the same.
@dataclass(slots=True)
class ScoringEvent:
    message_id: str
    kind: str  # "page", "identify", or the track event name ("Product Viewed", ...)
    properties: Mapping[str, Any]  # Segment properties (category, price, product_id, url, ...)
    at: datetime  # tz-aware UTC event time
    visit: int  # the lead's visit number this event belongs to (1-based)
    url: str | None = None  # page url (context.page.url or properties.url)


@dataclass(slots=True)
class LeadFacts:
    city: str | None = None
    country: str | None = None
    traits: Mapping[str, Any] = field(default_factory=dict)
    contacts: Mapping[str, str] = field(default_factory=dict)  # channel -> value
    visits: int = 0
    page_views: int = 0
    time_on_site_seconds: float = 0.0
    orders: int = 0
    last_seen_at: datetime | None = None
    interests: Mapping[str, int] = field(default_factory=dict)  # category -> views


Check = Callable[[ScoringEvent], bool]
FitFn = Callable[[LeadFacts, float], float]  # (facts, now as epoch seconds) -> coefficient

# CompiledBehaviour.frequency
ONCE_PER_LEAD, ONCE_PER_VISIT, EVERY_TIME = 0, 1, 2


@dataclass(frozen=True, slots=True)
class CompiledBehaviour:
    id: str
    label: str
    points: float
    frequency: int
    decay_rate: float  # ln 2 / half-life in 1/s; 0.0 means no decay
    cap_low: float
    cap_high: float
    check: Check | None
    half_life: float = 0.0  # seconds, for explanations (0.0: no decay); decay_rate scores


@dataclass(frozen=True, slots=True)
class CompiledFit:
    id: str
    label: str
    weight: float
    coefficient: FitFn
    uses_now: bool  # recency depends on the evaluation time; other fit rules do not
    # recency: the band edges in hours since the last event, where the coefficient can change
    # with time alone (the refresher's due times, engine.next_change_at)
    edges_hours: tuple[float, ...] = ()
    # recency: up to the lead's last event (facts.last_seen_at) the hours since it are 0, so the
    # coefficient there is its value at that moment (replay evaluates it once per lead)
    flat_until_last_seen: bool = False
    # The same coefficient with the facts that gave it, for breakdowns only (the hot path
    # calls `coefficient`); tests check the two agree.
    explain: "FitExplainFn | None" = None


@dataclass(frozen=True, slots=True)
class CompiledHard:
    id: str
    label: str
    steps: int
    within: float
    hold: float


@dataclass(frozen=True, slots=True)
class CompiledRuleSet:
    version: int
    name: str
    max_score: float
    warm: float
    hot: float
    hysteresis: float
    min_hold: float
    behaviour: Mapping[str, CompiledBehaviour]  # by id, in rule-set order
    behaviour_by_kind: Mapping[str, tuple[CompiledBehaviour, ...]]
    fit: tuple[CompiledFit, ...]
    hard: Mapping[str, CompiledHard]
    hard_steps_by_kind: Mapping[str, tuple[tuple[CompiledHard, int, Check | None], ...]]
    # Precomputed for replay's per-event loop (engine.replay), so that it does one lookup per
    # event: each named kind's behaviour rules followed by the "*" rules (the order `_apply`
    # counts them in), and the "*" rules alone for any other kind.
    behaviour_for_kind: Mapping[str, tuple[CompiledBehaviour, ...]] = field(default_factory=dict)
    behaviour_any: tuple[CompiledBehaviour, ...] = ()


# Not frozen, for the same reason as ScoringEvent (built for every line of a breakdown, with
# many fields); a value all the same.
@dataclass(slots=True)
class Why:
    """The numbers behind one breakdown line: its points recompute from them (app.scoring.
    explain words them). Which fields are set depends on the line's kind.

    behaviour: `count` events x `points_each` = `total` (before decay and cap); with a
    `half_life`, the rule's decayed total was `value_at_last_event` at its last counted event,
    `age` seconds ago, and is `decayed` = value_at_last_event x 2^(-age / half_life) now;
    without, `decayed` = `total`. The points are `decayed` bounded by `cap` (absolute, in the
    direction of the points), `capped` saying whether it bit.
    fit: the lead's `value` of `field` matched `option` (match, contacts) or fell in the band
    [`band_min`, `band_max`) (range), giving `coefficient`; points = coefficient x `weight`.
    limit: the rules add up to `rules_total`, outside 0..`limit`; points bring it back."""

    count: int | None = None
    points_each: float | None = None
    frequency: str | None = None  # once_per_lead, once_per_visit, every_time
    total: float | None = None
    half_life: float | None = None  # seconds; None: no decay
    value_at_last_event: float | None = None
    age: float | None = None  # seconds
    decayed: float | None = None
    cap: float | None = None
    capped: bool | None = None
    criterion: str | None = None  # match, range, contacts
    field: str | None = None
    value: str | float | tuple[str, ...] | None = None
    option: tuple[str, ...] | None = None
    band_min: float | None = None
    band_max: float | None = None
    coefficient: float | None = None
    weight: float | None = None
    rules_total: float | None = None
    limit: float | None = None


FitExplainFn = Callable[[LeadFacts, float], Why]  # (facts, now) -> the coefficient and why


@dataclass(frozen=True, slots=True)
class BreakdownItem:
    rule_id: str
    # limit: not a rule: the score's bounds (0 and max_score), when the rules' sum is outside
    kind: Literal["behaviour", "fit", "hard", "limit"]
    label: str
    points_raw: float  # before decay (behaviour), weight * coefficient (fit), 0 (hard)
    points: float  # after decay and cap
    events: int  # events counted by the rule (0 for fit rules)
    message_ids: tuple[str, ...]  # the most recent few of those events, newest first
    hot_until: datetime | None = None  # hard rules: the lead is hot until then
    why: Why = field(default_factory=Why)


@dataclass(frozen=True, slots=True)
class ScoreResult:
    state: dict[str, Any]
    score: float
    temperature: Temperature
    previous_temperature: Temperature
    changed: bool
    became_hot_at: datetime | None
    breakdown: list[BreakdownItem]
    rule_set_version: int
