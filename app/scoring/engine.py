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
    ONCE_PER_VISIT,
    BreakdownItem,
    CompiledBehaviour,
    CompiledFit,
    CompiledRuleSet,
    LeadFacts,
    ScoreResult,
    ScoringEvent,
    Temperature,
    Why,
)

# The engine's API; its types are defined in app.scoring.types (which the compiler and the
# hard rules share), the compilation in app.scoring.compiler.
__all__ = [
    "BreakdownItem",
    "CompiledRuleSet",
    "LeadFacts",
    "ScoreResult",
    "ScoringEvent",
    "Why",
    "advance",
    "apply_event",
    "apply_event_inplace",
    "compile_rule_set",
    "empty_state",
    "evaluate",
    "next_change_at",
    "replay",
]

STATE_VERSION = 1
WHOLE_POINT = 1.0  # a score moved this far from what is stored is shown again (next_change_at)
# next_change_at's precision: a crossing is located to the second when it is near, and to
# 1/256 of the time to it when far (the refresher then looks early, and again, closer).
NEAR_SECONDS = 1.0
FAR_SHARE = 1 / 256
NEGLIGIBLE_POINTS = (
    0.004  # below the score's rounding to 0.01: decayed terms summing to less are gone
)
ROUNDING = 0.006  # > how far round(score, 2) moves a score (0.005, and an ulp up to 1e9)
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
    compiled: CompiledRuleSet,
    state: Mapping[str, Any],
    facts: LeadFacts,
    now: datetime,
    *,
    explain: bool = True,
    shared: bool = False,
) -> ScoreResult:
    """The lead's score and temperature at `now`: decay applied, fit rules evaluated. With
    `explain=False` the breakdown is left empty (all else is the same): for callers that
    read only scores and temperatures, such as preview. `state` is not changed; with
    `shared` the result's state shares its rules' entries (only the top level, which
    evaluating sets, is copied): for callers that change neither afterwards."""
    if shared and state:
        _check_version(state)
        return _evaluate_into(compiled, dict(state), facts, _epoch(now), explain)
    return _evaluate_into(compiled, _copy_state(state), facts, _epoch(now), explain)


def replay(
    compiled: CompiledRuleSet,
    events: Iterable[ScoringEvent],
    facts: LeadFacts,
    now: datetime,
    *,
    explain: bool = True,
) -> ScoreResult:
    """Score from an empty state over `events` (in the order given), then evaluate at `now`
    (without the breakdown when not `explain`, as `evaluate`).

    Gives the same result as `apply_event` for each event followed by `evaluate(now)`: the
    temperature is stepped after every event (hysteresis depends on the path), but without
    copies or breakdowns.

    This is preview's and re-scoring's hot path (every stored event of a site), so the steps
    of `_replay_reference` are inlined here: the same operations on the same values in the
    same order, hence bit-for-bit the same result (tests/property/test_replay_fast_path.py),
    with the temperature kept in locals until the end and the per-rule fields read once.
    """
    state = empty_state()
    static_fit = sum(f.weight * f.coefficient(facts, 0.0) for f in compiled.fit if not f.uses_now)
    dynamic_fit = [(f.weight, f.coefficient) for f in compiled.fit if f.uses_now]
    # Stored histories end at the lead's last event, so recency is mostly 0 hours during the
    # replay: each such rule's points then are those at that moment, worked out once.
    seen = facts.last_seen_at
    seen_at = math.inf if seen is None else seen.timestamp()
    flat = all(f.flat_until_last_seen for f in compiled.fit if f.uses_now)
    flat_total = static_fit  # the fit rules' total then: the same additions, done once
    for weight, coefficient in dynamic_fit:
        flat_total += weight * coefficient(facts, seen_at)
    rule_entries: dict[str, dict[str, Any]] = state["rules"]
    hard_state: dict[str, dict[str, Any]] = state["hard"]
    for_kind = compiled.behaviour_for_kind
    any_kind = compiled.behaviour_any
    hard_steps = compiled.hard_steps_by_kind
    hard_any = hard_steps.get("*")
    behaviour = compiled.behaviour.values()
    max_score = compiled.max_score
    # _step_temperature's thresholds by current level (x - 0.0 is x: the same values).
    hot_at = (compiled.hot - 0.0, compiled.hot - 0.0, compiled.hot - compiled.hysteresis)
    warm_at = (
        compiled.warm - 0.0,
        compiled.warm - compiled.hysteresis,
        compiled.warm - compiled.hysteresis,
    )
    min_hold = compiled.min_hold
    exp = math.exp
    # (decay rate, cap low, cap high, entry) of the rules this lead has touched, in rule-set
    # order, so stepping the temperature after each event looks at those alone.
    touched: list[tuple[float, float, float, dict[str, Any]]] = []
    level = 0
    since: float | None = None
    hot_since: float | None = None
    last: float | None = None
    for event in events:
        moment = event.at
        if moment.tzinfo is None:
            raise ValueError("scoring needs timezone-aware datetimes")
        t = moment.timestamp()
        rules = for_kind.get(event.kind, any_kind)
        for rule in rules:
            check = rule.check
            if check is not None and not check(event):
                continue
            frequency = rule.frequency
            if frequency != EVERY_TIME:
                if frequency == ONCE_PER_VISIT:
                    # Most events of a visit come after the one that counted: `_count` would
                    # change nothing (not too old a visit, a key after the counted one).
                    entry = rule_entries.get(rule.id)
                    if entry is not None and event.visit > entry.get("floor", 0):
                        counted = entry["visits"].get(str(event.visit))
                        if counted is not None and t > counted[0]:
                            continue
                _count(rule, rule_entries, event, t)
                continue
            # _count and _add for an every-time rule, inlined.
            entry = rule_entries.get(rule.id)
            if entry is None:
                entry = rule_entries[rule.id] = {"v": 0.0, "t": t, "raw": 0.0, "n": 0, "ids": []}
            key = [t, event.message_id]
            points = rule.points
            rate = rule.decay_rate
            if rate:
                t_ref = entry["t"]
                if t > t_ref:
                    entry["v"] = entry["v"] * exp(-rate * (t - t_ref)) + points
                    entry["t"] = t
                else:
                    entry["v"] += points * exp(-rate * (t_ref - t))
            else:
                entry["v"] += points
            entry["raw"] += points
            entry["n"] += 1
            ids = entry["ids"]
            if ids and ids[-1] > key:
                _remember(ids, key)
            else:
                ids.append(key)
                if len(ids) > RECENT_EVENTS:
                    del ids[0]
        matches = hard_steps.get(event.kind) if hard_steps else None
        if matches:
            hard_rules.record(matches, hard_state, event, t)
        if hard_any:
            hard_rules.record(hard_any, hard_state, event, t)
        at = last if last is not None and last > t else t
        if len(rule_entries) != len(touched):
            touched = [
                (r.decay_rate, r.cap_low, r.cap_high, rule_entries[r.id])
                for r in behaviour
                if r.id in rule_entries
            ]
        hard = False
        if hard_state:
            for hard_entry in hard_state.values():
                until = hard_entry["until"]
                if until is not None and until > at:
                    hard = True
                    break
        if hard:  # hot whatever the score: no need to work it out
            target = 2
        else:
            if flat and at <= seen_at:
                total = flat_total
            else:
                total = static_fit
                for weight, coefficient in dynamic_fit:
                    total += weight * coefficient(facts, at)
            for rate, low, high, entry in touched:  # _rule_points, inlined
                value = entry["v"]
                if rate:
                    elapsed = at - entry["t"]
                    if elapsed > 0:
                        value *= exp(-rate * elapsed)
                if value > high:
                    value = high
                elif value < low:
                    value = low
                total += value
            # _clamp (max and min keep their first argument on ties, as these do).
            if total < 0.0:
                total = 0.0
            if total > max_score:
                total = max_score
            # round(x, 2) moves x by at most 0.005 and an ulp, so it can only decide a
            # comparison with a threshold within ROUNDING of it: rounded only there.
            hot_t, warm_t = hot_at[level], warm_at[level]
            if hot_t - ROUNDING < total < hot_t + ROUNDING or (
                warm_t - ROUNDING < total < warm_t + ROUNDING
            ):
                total = round(total, 2)
            # _step_temperature, inlined.
            target = 2 if total >= hot_t else 1 if total >= warm_t else 0
        if target < level and since is not None and at - since < min_hold:
            target = level
        if target != level:
            level = target
            since = at
            hot_since = at if target == 2 else None
        last = at  # max(last, at): `at` is never below `last` (see above)
    state["temperature"] = _LEVELS[level]
    state["since"] = since
    state["hot_since"] = hot_since
    state["at"] = last
    return _evaluate_into(compiled, state, facts, _epoch(now), explain)


def _replay_reference(
    compiled: CompiledRuleSet, events: Iterable[ScoringEvent], facts: LeadFacts, now: datetime
) -> ScoreResult:
    """`replay` as first written, on the shared per-event steps (`_apply_at`,
    `_step_temperature`): kept as the oracle `replay`'s inlined loop is tested against
    (tests/property/test_replay_fast_path.py), and as the readable statement of what it does."""
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


def next_change_at(
    compiled: CompiledRuleSet,
    state: Mapping[str, Any],
    facts: LeadFacts,
    now: datetime,
    shown_score: float,
) -> datetime | None:
    """When the lead next needs a look with no new event: the earliest moment after `now` at
    which `evaluate` would show a temperature other than the state's, or a score a whole point
    or more from `shown_score` (what the lead's row holds). `now` itself when that is already
    so; None when it never will be (nothing decays, no hold or hard rule is left to end).

    With time alone the score moves only by decay (each behaviour rule's total tends to 0,
    monotonically) and by recency fit bands; the temperature by those, by a hard rule's hold
    ending and by the minimum hold ending. The moments where something jumps are probed
    exactly; the continuous parts by doubling steps from `now` and then bisection, to the
    second when near (NEAR_SECONDS), to FAR_SHARE of the distance when far, answering the
    earlier end then, so the lead is looked at early and its next time is found again, closer.
    A change that starts and undoes itself between two probes (only possible when rules of
    opposite signs decay at different rates) can be missed: it is seen at the next event."""
    t0 = _epoch(now)
    version_check = state.get("v")
    if version_check != STATE_VERSION:
        raise ValueError(f"unknown scoring state version {version_check!r}")
    constant = 0.0
    decaying: list[tuple[CompiledBehaviour, Mapping[str, Any]]] = []
    horizon = t0
    rules = state["rules"]
    for rule in compiled.behaviour.values():
        entry = rules.get(rule.id)
        if entry is None or not entry["n"]:
            continue
        if not rule.decay_rate:
            constant += _rule_points(rule, entry, t0)
            continue
        decaying.append((rule, entry))
    negligible = NEGLIGIBLE_POINTS / max(1, len(decaying))
    for rule, entry in decaying:
        value = abs(entry["v"])
        if value > negligible:
            horizon = max(horizon, entry["t"] + math.log(value / negligible) / rule.decay_rate)
    jumps: set[float] = set()
    dynamic: list[CompiledFit] = []
    for fit in compiled.fit:
        if not fit.uses_now:
            constant += fit.weight * fit.coefficient(facts, t0)
            continue
        dynamic.append(fit)
        if facts.last_seen_at is not None:
            seen = facts.last_seen_at.timestamp()
            jumps.update(seen + hours * 3600.0 for hours in fit.edges_hours)
    untils = [
        entry["until"]
        for hard in compiled.hard.values()
        if (entry := state["hard"].get(hard.id)) is not None and entry["until"] is not None
    ]
    jumps.update(untils)
    current = _LEVEL[state["temperature"]]
    since = state["since"]
    if current and since is not None:
        jumps.add(since + compiled.min_hold)
    jumps = {t for t in jumps if t > t0}
    horizon = max(horizon, *jumps) if jumps else horizon

    def changed(t: float) -> bool:
        total = constant
        for rule, entry in decaying:
            total += _rule_points(rule, entry, t)
        for fit in dynamic:
            total += fit.weight * fit.coefficient(facts, t)
        score = _clamp(compiled, total)
        if abs(score - shown_score) >= WHOLE_POINT:
            return True
        hard = any(until > t for until in untils)
        return _target_level(compiled, current, since, score, hard, t) != current

    if changed(t0):
        return now
    probes = set(jumps)
    step = NEAR_SECONDS
    while t0 + step < horizon:
        probes.add(t0 + step)
        step *= 2
    probes.add(horizon)
    low = t0
    for probe in sorted(probes):
        if not changed(probe):
            low = probe
            continue
        if probe in jumps and not changed(probe - NEAR_SECONDS):
            return datetime.fromtimestamp(probe, UTC)  # a hold or band ends: exactly then
        high = probe
        while high - low > max(NEAR_SECONDS, (low - t0) * FAR_SHARE):
            middle = (low + high) / 2
            if changed(middle):
                high = middle
            else:
                low = middle
        moment = high if high - low <= NEAR_SECONDS else low
        return datetime.fromtimestamp(moment, UTC)
    return None


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


def _target_level(
    compiled: CompiledRuleSet,
    current: int,
    since: float | None,
    score: float,
    hard: bool,
    now: float,
) -> int:
    """The level a lead at `current` (since `since`) moves to with `score` at `now`."""
    # A level already reached is kept down to its threshold minus the hysteresis margin.
    hot = compiled.hot - (compiled.hysteresis if current == 2 else 0.0)
    warm = compiled.warm - (compiled.hysteresis if current >= 1 else 0.0)
    target = 2 if hard or score >= hot else 1 if score >= warm else 0
    if target < current and since is not None and now - since < compiled.min_hold:
        return current
    return target


def _step_temperature(
    compiled: CompiledRuleSet, state: dict[str, Any], score: float, hard: bool, now: float
) -> None:
    """Move the temperature: up at once; down only past the margin and after `min_hold`."""
    current = _LEVEL[state["temperature"]]
    target = _target_level(compiled, current, state["since"], score, hard, now)
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
                    why=_behaviour_why(rule, entry, now, points),
                )
            )  # fmt: skip
    for fit in compiled.fit:
        points = fit.weight * fit.coefficient(facts, now)
        total += points
        if points and breakdown is not None:
            why = fit.explain(facts, now) if fit.explain is not None else Why(weight=fit.weight)
            breakdown.append(
                BreakdownItem(
                    fit.id, "fit", fit.label, round(points, 2), round(points, 2), 0, (), why=why
                )
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
                    datetime.fromtimestamp(entry["until"], UTC), Why(count=entry["n"]),
                )
            )  # fmt: skip
    score = _clamp(compiled, total)
    if breakdown is not None and (total < 0.0 or total > compiled.max_score):
        # The score's bounds, as a line of their own, so that the lines add up to the score.
        bound = 0.0 if total < 0.0 else compiled.max_score
        breakdown.append(
            BreakdownItem(
                "max_score" if bound else "min_score", "limit",
                "Maximum score" if bound else "Minimum score", 0.0,
                round(bound - total, 2), 0, (), why=Why(rules_total=total, limit=bound),
            )
        )  # fmt: skip
    return score, hard_active


_FREQUENCY_NAMES = {
    ONCE_PER_LEAD: "once_per_lead", ONCE_PER_VISIT: "once_per_visit", EVERY_TIME: "every_time"
}  # fmt: skip


def _behaviour_why(
    rule: CompiledBehaviour, entry: Mapping[str, Any], now: float, points: float
) -> Why:
    """The numbers of a behaviour rule's line: what `_rule_points` computed, step by step."""
    cap = rule.cap_high if rule.cap_high != math.inf else -rule.cap_low
    decayed: float = entry["v"]
    age: float | None = None
    if rule.decay_rate:
        age = max(0.0, now - entry["t"])
        decayed = decayed * math.exp(-rule.decay_rate * age) if age else decayed
    return Why(
        count=entry["n"],
        points_each=rule.points,
        frequency=_FREQUENCY_NAMES[rule.frequency],
        total=entry["raw"],
        half_life=rule.half_life or None,
        value_at_last_event=entry["v"] if rule.decay_rate else None,
        age=age,
        decayed=decayed,
        cap=None if cap == math.inf else cap,
        capped=points != decayed,
    )


def _evaluate_into(
    compiled: CompiledRuleSet,
    state: dict[str, Any],
    facts: LeadFacts,
    now: float,
    explain: bool = True,
) -> ScoreResult:
    breakdown: list[BreakdownItem] = []
    score, hard_active = _score_at(compiled, state, facts, now, breakdown if explain else None)
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
