"""The pure scoring engine: rule set + lead state + event -> new state, score and explanation.

No I/O, no clock reads, no database: time is always a parameter. One implementation serves
ingestion (`advance`, one event at a time, in place; `apply_event` is the same step on a copy,
with the breakdown), re-scoring and preview (`replay`), and reading a lead later (`evaluate`).

State format (a JSON-serializable dict, stored in a JSON column; times are epoch seconds):

    {"v": 1,                      # state format version
     "rule_set_version": 3,       # last rule-set version applied
     "at": 1700000000.0,          # last evaluation time (null before the first)
     "temperature": "warm", "since": 1700000000.0, "hot_since": null,
     "rules": {"<behaviour rule id>": {
         "v": 12.5, "t": 1700000000.0,  # decayed total at reference time t (exact: see below)
         "raw": 15.0, "n": 5,           # points before decay, counted events
         "ids": [[t, "message id"], ...],   # the last few counted events, oldest first
         "first": [t, "id"],            # once_per_lead: the counted (earliest) event
         "visits": {"2": [t, "id"]}, "floor": 0}},  # once_per_visit: recent visits counted
     "hard": {"<hard rule id>": {
         "steps": [[[t, "id"], ...], ...], "fired": [[t, "id"], ...],
         "until": 1700003600.0, "n": 1, "ids": [[t, "id"], ...]}}}

Decay is exact in event time, so arrival order does not change the score: each rule keeps
`v` at reference time `t` (the latest event time seen); an event at time `e` adds
`points * 2**(-(t - e) / half_life)`, and the value at `now` is `v * 2**(-(now - t) / h)`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from app.scoring import hard_rules
from app.scoring.compiler import compile_rule_set
from app.scoring.types import (
    EVERY_TIME,
    ONCE_PER_LEAD,
    BreakdownItem,
    CompiledBehaviour,
    CompiledRuleSet,
    LeadFacts,
    ScoreResult,
    ScoringEvent,
    Temperature,
)

# The engine's API; its types are defined in app.scoring.types (which the compiler and the
# hard rules share), the compilation in app.scoring.compiler.
__all__ = [
    "BreakdownItem",
    "CompiledRuleSet",
    "LeadFacts",
    "ScoreResult",
    "ScoringEvent",
    "advance",
    "apply_event",
    "apply_event_inplace",
    "compile_rule_set",
    "empty_state",
    "evaluate",
    "replay",
]

STATE_VERSION = 1
RECENT_EVENTS = 5  # message ids kept per rule for the breakdown
RECENT_VISITS = 16  # visits remembered per once_per_visit rule (keeps the state bounded)

_LEVELS: tuple[Temperature, ...] = ("cold", "warm", "hot")
_LEVEL = {"cold": 0, "warm": 1, "hot": 2}


def empty_state() -> dict[str, Any]:
    """The state of a lead nobody has scored yet."""
    return {
        "v": STATE_VERSION,
        "rule_set_version": None,
        "at": None,
        "temperature": "cold",
        "since": None,
        "hot_since": None,
        "rules": {},
        "hard": {},
    }


def apply_event(
    compiled: CompiledRuleSet, state: Mapping[str, Any], event: ScoringEvent, facts: LeadFacts
) -> ScoreResult:
    """Apply one event's behaviour and hard rules, then evaluate at `event.at`.

    `state` is not modified; the result carries a new one. A late event (older than the lead's
    last evaluation) is evaluated at that last evaluation time, so temperature never runs
    backwards in time.
    """
    new_state = _copy_state(state)
    return _evaluate_into(compiled, new_state, facts, _apply_at(compiled, new_state, event))


def advance(
    compiled: CompiledRuleSet, state: dict[str, Any], event: ScoringEvent, facts: LeadFacts
) -> float:
    """`apply_event` for ingestion's hot path: `state` (a valid state, see `empty_state`) is
    changed in place and no breakdown is built; returns the score. The state, score and
    temperature come out exactly as `apply_event`'s (tests/scoring compare the two)."""
    _check_version(state)
    now = _apply_at(compiled, state, event)
    score, hard_active = _score_at(compiled, state, facts, now, None)
    _step_temperature(compiled, state, score, hard_active, now)
    state["rule_set_version"] = compiled.version
    return score


def apply_event_inplace(
    compiled: CompiledRuleSet, state: dict[str, Any], event: ScoringEvent
) -> None:
    """Add one event to `state` in place, without evaluating (for bulk loading).

    Cheaper than `apply_event` (no copy, no evaluation), but the temperature's history is not
    stepped; call `evaluate` afterwards. `replay` is the usual way to score many events.
    """
    _apply(compiled, state, event)


def evaluate(
    compiled: CompiledRuleSet, state: Mapping[str, Any], facts: LeadFacts, now: datetime
) -> ScoreResult:
    """The lead's score and temperature at `now`: decay applied, fit rules evaluated."""
    return _evaluate_into(compiled, _copy_state(state), facts, _epoch(now))


def replay(
    compiled: CompiledRuleSet, events: Iterable[ScoringEvent], facts: LeadFacts, now: datetime
) -> ScoreResult:
    """Score from an empty state over `events` (in the order given), then evaluate at `now`.

    Gives the same result as `apply_event` for each event followed by `evaluate(now)`: the
    temperature is stepped after every event (hysteresis depends on the path), but without
    copies or breakdowns.
    """
    state = empty_state()
    static_fit = sum(f.weight * f.coefficient(facts, 0.0) for f in compiled.fit if not f.uses_now)
    dynamic_fit = [f for f in compiled.fit if f.uses_now]
    rule_entries = state["rules"]
    # The behaviour rules this lead has touched, with their entries, so stepping the
    # temperature after each event looks at those alone (this is preview's hot path).
    touched: list[tuple[CompiledBehaviour, dict[str, Any]]] = []
    rule_points = _rule_points
    for event in events:
        at = _apply_at(compiled, state, event)
        if len(rule_entries) != len(touched):
            touched = [
                (r, rule_entries[r.id]) for r in compiled.behaviour.values() if r.id in rule_entries
            ]
        total = static_fit
        for rule in dynamic_fit:
            total += rule.weight * rule.coefficient(facts, at)
        for behaviour, entry in touched:
            total += rule_points(behaviour, entry, at)
        hard = hard_rules.active(state, at)
        _step_temperature(compiled, state, _clamp(compiled, total), hard, at)
    return _evaluate_into(compiled, state, facts, _epoch(now))


# --- applying events --------------------------------------------------------------------------


def _epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        raise ValueError("scoring needs timezone-aware datetimes")
    return moment.timestamp()


def _apply(compiled: CompiledRuleSet, state: dict[str, Any], event: ScoringEvent) -> float:
    t = _epoch(event.at)
    by_kind = compiled.behaviour_by_kind
    for rules in (by_kind.get(event.kind), by_kind.get("*")):
        if rules:
            for rule in rules:
                if rule.check is None or rule.check(event):
                    _count(rule, state["rules"], event, t)
    steps = compiled.hard_steps_by_kind
    for matches in (steps.get(event.kind), steps.get("*")):
        if matches:
            hard_rules.record(matches, state["hard"], event, t)
    return t


def _apply_at(compiled: CompiledRuleSet, state: dict[str, Any], event: ScoringEvent) -> float:
    """Apply the event; returns when to evaluate: its time, or the lead's last evaluation if
    the event arrived late (temperature never runs backwards in time)."""
    t = _apply(compiled, state, event)
    last: float | None = state["at"]
    return last if last is not None and last > t else t


def _count(rule: CompiledBehaviour, rules: dict[str, Any], event: ScoringEvent, t: float) -> None:
    entry = rules.get(rule.id)
    if entry is None:
        entry = rules[rule.id] = {"v": 0.0, "t": t, "raw": 0.0, "n": 0, "ids": []}
    key = [t, event.message_id]
    if rule.frequency == EVERY_TIME:
        _add(entry, rule, rule.points, t)
        entry["raw"] += rule.points
        entry["n"] += 1
        _remember(entry["ids"], key)
        return
    if rule.frequency == ONCE_PER_LEAD:
        holder, slot = entry, "first"
    else:
        visits = entry.setdefault("visits", {})
        if event.visit <= entry.get("floor", 0):
            return  # a visit too old to remember: treated as already counted
        holder, slot = visits, str(event.visit)
    counted = holder.get(slot)
    if counted is None:
        _add(entry, rule, rule.points, t)
        entry["raw"] += rule.points
        entry["n"] += 1
        _remember(entry["ids"], key)
        holder[slot] = key
        if holder is not entry and len(holder) > RECENT_VISITS:
            oldest = min(holder, key=int)
            del holder[oldest]
            entry["floor"] = max(entry.get("floor", 0), int(oldest))
    elif key < counted:
        # An earlier event of the same lead/visit arrived late: it is the one that counts.
        _add(entry, rule, -rule.points, counted[0])
        _add(entry, rule, rule.points, t)
        if counted in entry["ids"]:
            entry["ids"].remove(counted)
        _remember(entry["ids"], key)
        holder[slot] = key


def _add(entry: dict[str, Any], rule: CompiledBehaviour, points: float, t: float) -> None:
    rate = rule.decay_rate
    if rate:
        t_ref = entry["t"]
        if t > t_ref:  # re-base to the newest event time, so factors never exceed 1
            entry["v"] = entry["v"] * math.exp(-rate * (t - t_ref)) + points
            entry["t"] = t
        else:
            entry["v"] += points * math.exp(-rate * (t_ref - t))
    else:
        entry["v"] += points


def _remember(ids: list[list[Any]], key: list[Any]) -> None:
    if not ids or ids[-1] <= key:
        ids.append(key)
    else:
        index = len(ids)
        while index and ids[index - 1] > key:
            index -= 1
        ids.insert(index, key)
    if len(ids) > RECENT_EVENTS:
        del ids[0]


# --- evaluating -------------------------------------------------------------------------------


def _rule_points(rule: CompiledBehaviour, entry: Mapping[str, Any], now: float) -> float:
    """A behaviour rule's points at `now`: its total decayed from its reference time, capped.
    Every evaluation (ingestion, reads, replays) goes through here."""
    value: float = entry["v"]
    rate = rule.decay_rate
    if rate:
        elapsed = now - entry["t"]
        if elapsed > 0:  # an event "in the future" never counts more than its points
            value *= math.exp(-rate * elapsed)
    high = rule.cap_high
    if value > high:
        return high
    low = rule.cap_low
    return low if value < low else value


def _clamp(compiled: CompiledRuleSet, total: float) -> float:
    return round(min(max(total, 0.0), compiled.max_score), 2)


def _step_temperature(
    compiled: CompiledRuleSet, state: dict[str, Any], score: float, hard: bool, now: float
) -> None:
    """Move the temperature: up at once; down only past the margin and after `min_hold`."""
    current = _LEVEL[state["temperature"]]
    # A level already reached is kept down to its threshold minus the hysteresis margin.
    hot = compiled.hot - (compiled.hysteresis if current == 2 else 0.0)
    warm = compiled.warm - (compiled.hysteresis if current >= 1 else 0.0)
    target = 2 if hard or score >= hot else 1 if score >= warm else 0
    since = state["since"]
    if target < current and since is not None and now - since < compiled.min_hold:
        target = current
    if target != current:
        state["temperature"] = _LEVELS[target]
        state["since"] = now
        state["hot_since"] = now if target == 2 else None
    state["at"] = now if state["at"] is None else max(state["at"], now)


def _score_at(
    compiled: CompiledRuleSet,
    state: Mapping[str, Any],
    facts: LeadFacts,
    now: float,
    breakdown: list[BreakdownItem] | None,
) -> tuple[float, bool]:
    """(score, a hard rule is active) at `now`; explains every point into `breakdown` unless
    it is None. Ingestion (`advance`) and reads (`evaluate`) share it, so they agree to the
    last bit: the same terms, added in the same order."""
    total = 0.0
    rules = state["rules"]
    for rule in compiled.behaviour.values():
        entry = rules.get(rule.id)
        if entry is None or not entry["n"]:
            continue
        points = _rule_points(rule, entry, now)
        total += points
        if breakdown is not None:
            breakdown.append(
                BreakdownItem(
                    rule.id, "behaviour", rule.label, round(entry["raw"], 2), round(points, 2),
                    entry["n"], tuple(key[1] for key in reversed(entry["ids"])),
                )
            )  # fmt: skip
    for fit in compiled.fit:
        points = fit.weight * fit.coefficient(facts, now)
        total += points
        if points and breakdown is not None:
            breakdown.append(
                BreakdownItem(fit.id, "fit", fit.label, round(points, 2), round(points, 2), 0, ())
            )
    hard_active = False
    hard_state = state["hard"]
    for hard in compiled.hard.values():
        entry = hard_state.get(hard.id)
        if entry is not None and entry["until"] is not None and entry["until"] > now:
            hard_active = True
            if breakdown is None:
                break
            breakdown.append(
                BreakdownItem(
                    hard.id, "hard", hard.label, 0.0, 0.0, entry["n"],
                    tuple(key[1] for key in reversed(entry["ids"])),
                    datetime.fromtimestamp(entry["until"], UTC),
                )
            )  # fmt: skip
    return _clamp(compiled, total), hard_active


def _evaluate_into(
    compiled: CompiledRuleSet, state: dict[str, Any], facts: LeadFacts, now: float
) -> ScoreResult:
    breakdown: list[BreakdownItem] = []
    score, hard_active = _score_at(compiled, state, facts, now, breakdown)
    previous: Temperature = state["temperature"]
    _step_temperature(compiled, state, score, hard_active, now)
    state["rule_set_version"] = compiled.version
    temperature: Temperature = state["temperature"]
    hot_since = state["hot_since"]
    return ScoreResult(
        state=state,
        score=score,
        temperature=temperature,
        previous_temperature=previous,
        changed=temperature != previous,
        became_hot_at=None if hot_since is None else datetime.fromtimestamp(hot_since, UTC),
        breakdown=breakdown,
        rule_set_version=compiled.version,
    )


def _copy_state(state: Mapping[str, Any] | None) -> dict[str, Any]:
    if not state:  # a lead's JSON column may start as {} or null
        return empty_state()
    _check_version(state)
    return _copy_json(state)  # type: ignore[no-any-return]


def _check_version(state: Mapping[str, Any]) -> None:
    if state.get("v") != STATE_VERSION:
        raise ValueError(f"unknown scoring state version {state.get('v')!r}")


def _copy_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value
