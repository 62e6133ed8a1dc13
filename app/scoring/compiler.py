"""Compile a validated rule set into plain structures and closures for the engine's hot path.

Compilation happens once per rule-set version; applying an event then costs a dict lookup by
event kind and a few closure calls: no pydantic, no copies, no regex compilation.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any, cast

from app.domain.events import property_number
from app.scoring.schemas import (
    BehaviourRule,
    Condition,
    ContactsFit,
    HardRule,
    MatchFit,
    RangeFit,
    RuleSet,
)
from app.scoring.types import (
    EVERY_TIME,
    ONCE_PER_LEAD,
    ONCE_PER_VISIT,
    Check,
    CompiledBehaviour,
    CompiledFit,
    CompiledHard,
    CompiledRuleSet,
    FitExplainFn,
    FitFn,
    LeadFacts,
    ScoringEvent,
    Why,
)

_FREQUENCIES = {"once_per_lead": ONCE_PER_LEAD, "once_per_visit": ONCE_PER_VISIT}
_LN2 = math.log(2.0)


def compile_rule_set(rule_set: RuleSet) -> CompiledRuleSet:
    """Turn a validated `RuleSet` into the engine's plain structures (do this once per version)."""
    default_half_life = rule_set.decay.half_life
    behaviour = {r.id: _compile_behaviour(r, default_half_life) for r in rule_set.behaviour}
    by_kind: dict[str, list[CompiledBehaviour]] = {}
    for source, compiled in zip(rule_set.behaviour, behaviour.values(), strict=True):
        by_kind.setdefault(source.event, []).append(compiled)
    hard: dict[str, CompiledHard] = {}
    hard_by_kind: dict[str, list[tuple[CompiledHard, int, Check | None]]] = {}
    for rule in rule_set.hard:
        compiled_hard = _compile_hard(rule)
        hard[rule.id] = compiled_hard
        for index, step in enumerate(rule.steps):
            hard_by_kind.setdefault(step.event, []).append(
                (compiled_hard, index, compile_conditions(step.conditions))
            )
    star = tuple(by_kind.get("*", ()))
    return CompiledRuleSet(
        version=rule_set.version,
        name=rule_set.name,
        max_score=rule_set.max_score,
        warm=rule_set.thresholds.warm,
        hot=rule_set.thresholds.hot,
        hysteresis=rule_set.hysteresis_points,
        min_hold=rule_set.min_hold,
        behaviour=behaviour,
        behaviour_by_kind={kind: tuple(rules) for kind, rules in by_kind.items()},
        fit=tuple(_compile_fit(rule) for rule in rule_set.fit),
        hard=hard,
        hard_steps_by_kind={kind: tuple(steps) for kind, steps in hard_by_kind.items()},
        # An event whose kind is literally "*" meets the "*" rules twice, as in `_apply`.
        behaviour_for_kind={kind: (*rules, *star) for kind, rules in by_kind.items()},
        behaviour_any=star,
    )


def _compile_behaviour(rule: BehaviourRule, default_half_life: float | None) -> CompiledBehaviour:
    half_life = rule.half_life if rule.half_life is not None else default_half_life
    rate = 0.0 if half_life is None or half_life == "never" else _LN2 / float(half_life)
    cap = math.inf if rule.cap is None else rule.cap
    # The cap bounds the rule's total in the direction its points push the score.
    cap_low, cap_high = (-math.inf, cap) if rule.points >= 0 else (-cap, math.inf)
    return CompiledBehaviour(
        id=rule.id,
        label=rule.label or rule.id,
        points=rule.points,
        frequency=_FREQUENCIES.get(rule.frequency, EVERY_TIME),
        decay_rate=rate,
        cap_low=cap_low,
        cap_high=cap_high,
        check=compile_conditions(rule.conditions),
        half_life=0.0 if rate == 0.0 else float(cast(float, half_life)),
    )


def _compile_hard(rule: HardRule) -> CompiledHard:
    hold = rule.hold if rule.hold is not None else 0.0
    return CompiledHard(
        id=rule.id,
        label=rule.label or rule.id,
        steps=len(rule.steps),
        within=rule.within if rule.within is not None else 0.0,
        hold=hold,
    )


# --- conditions -------------------------------------------------------------------------------


def compile_conditions(conditions: list[Condition]) -> Check | None:
    """One closure testing all conditions (AND); None when there are none (the fast path)."""
    checks = [_compile_condition(c) for c in conditions]
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]

    def all_hold(event: ScoringEvent) -> bool:
        return all(check(event) for check in checks)

    return all_hold


def _getter(field: str) -> Callable[[ScoringEvent], Any]:
    if field == "url":
        return lambda e: e.url if e.url is not None else e.properties.get("url")
    if field == "visit":
        return lambda e: e.visit
    path = field.split(".")[1:]
    if len(path) == 1:
        key = path[0]
        return lambda e: e.properties.get(key)

    def nested(event: ScoringEvent) -> Any:
        value: Any = event.properties
        for part in path:
            if not isinstance(value, Mapping):
                return None
            value = value.get(part)
        return value

    return nested


def _equals(target: Any) -> Callable[[Any], bool]:
    """Equality as a shop owner means it: text ignores case, "42" equals 42."""
    if isinstance(target, bool):
        return lambda x: x is target
    if isinstance(target, int | float):
        number = float(target)
        return lambda x: property_number(x) == number
    text = str(target).casefold()
    return lambda x: isinstance(x, str) and x.casefold() == text


def _member_of(values: list[Any]) -> Callable[[Any], bool]:
    texts = {v.casefold() for v in values if isinstance(v, str)}
    numbers = {float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)}
    flags = {v for v in values if isinstance(v, bool)}

    def member(x: Any) -> bool:
        if isinstance(x, bool):
            return x in flags
        if isinstance(x, str) and x.casefold() in texts:
            return True
        return bool(numbers) and property_number(x) in numbers

    return member


def _compile_condition(condition: Condition) -> Check:
    get = _getter(condition.field)
    op, target = condition.op, condition.value
    test: Callable[[Any], bool]
    if op in ("eq", "ne"):
        test = _equals(target)
    elif op in ("in", "not_in"):
        test = _member_of(target)
    elif op in ("gt", "gte", "lt", "lte"):
        test = _compare(op, float(target))
    elif op == "contains":
        test = _contains(target)
    elif op == "matches":
        search = re.compile(target).search
        test = lambda x: isinstance(x, str) and search(x) is not None  # noqa: E731
    else:  # exists
        test = (lambda x: x is not None) if target else (lambda x: x is None)
    if op in ("ne", "not_in"):  # a missing property is "not equal" to anything
        return lambda e: not test(get(e))
    general: Check = lambda e: test(get(e))  # noqa: E731
    if condition.field == "visit" and op in _COMPARISONS:
        return _visit_comparison(_COMPARISONS[op], float(target), general)
    return general


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le,
}  # fmt: skip
_EXACT_INT = 2**53  # ints up to this convert to float exactly


def _visit_comparison(compare: Callable[[Any, Any], bool], bound: float, general: Check) -> Check:
    """ "visit >= 2" (the default rule set's return visit, tested on every event): an int visit
    compares with the bound as `property_number` would make it compare (float(v) is v exactly),
    without its conversions; anything else takes the general path."""

    def visit_check(event: ScoringEvent) -> bool:
        visit = event.visit
        if type(visit) is int and -_EXACT_INT <= visit <= _EXACT_INT:
            return compare(visit, bound)
        return general(event)

    return visit_check


def _compare(op: str, bound: float) -> Callable[[Any], bool]:
    def compare(x: Any) -> bool:
        n = property_number(x)
        if n is None:
            return False
        if op == "gt":
            return n > bound
        if op == "gte":
            return n >= bound
        if op == "lt":
            return n < bound
        return n <= bound

    return compare


def _contains(target: Any) -> Callable[[Any], bool]:
    equals = _equals(target)
    needle = str(target).casefold()

    def contains(x: Any) -> bool:
        if isinstance(x, str):
            return needle in x.casefold()
        if isinstance(x, list | tuple | set | frozenset):
            return any(equals(item) for item in x)
        return False

    return contains


# --- fit --------------------------------------------------------------------------------------


def _compile_fit(rule: MatchFit | RangeFit | ContactsFit) -> CompiledFit:
    label = rule.label or rule.id
    if isinstance(rule, MatchFit):
        fn, explain = _match_fit(rule), _match_why(rule)
    elif isinstance(rule, RangeFit):
        fn, explain = _range_fit(rule), _range_why(rule)
    else:
        fn, explain = _contacts_fit(rule), _contacts_why(rule)
    uses_now = isinstance(rule, RangeFit) and rule.field == "recency_hours"
    edges: tuple[float, ...] = ()
    if uses_now and isinstance(rule, RangeFit):
        edges = tuple(
            sorted({e for b in rule.bands for e in (b.min, b.max) if e is not None and e > 0})
        )
    return CompiledFit(rule.id, label, rule.weight, fn, uses_now, edges, uses_now, explain)


def _match_fit(rule: MatchFit) -> FitFn:
    options = [
        (frozenset(v.strip().casefold() for v in o.values), o.coefficient) for o in rule.options
    ]
    if rule.field == "interests":

        def interests(facts: LeadFacts, now: float) -> float:
            seen = {str(k).strip().casefold() for k, views in facts.interests.items() if views}
            for values, coefficient in options:
                if not seen.isdisjoint(values):
                    return coefficient
            return 0.0

        return interests
    lookup: dict[str, float] = {}
    for values, coefficient in options:
        for value in values:
            lookup.setdefault(value, coefficient)  # first matching option wins
    if rule.field.startswith("traits."):
        trait = rule.field.removeprefix("traits.")
        read: Callable[[LeadFacts], Any] = lambda f: f.traits.get(trait)  # noqa: E731
    else:
        attribute = rule.field
        read = lambda f: getattr(f, attribute)  # noqa: E731

    def match(facts: LeadFacts, now: float) -> float:
        value = read(facts)
        if value is None or isinstance(value, Mapping | list):
            return 0.0
        return lookup.get(str(value).strip().casefold(), 0.0)

    return match


def _range_fit(rule: RangeFit) -> FitFn:
    bands = [
        (
            -math.inf if b.min is None else b.min,
            math.inf if b.max is None else b.max,
            b.coefficient,
        )
        for b in rule.bands
    ]
    field = rule.field

    def in_band(facts: LeadFacts, now: float) -> float:
        if field == "recency_hours":
            if facts.last_seen_at is None:
                return 0.0
            value = max(0.0, (now - facts.last_seen_at.timestamp()) / 3600.0)
        else:
            value = float(getattr(facts, field))
        for low, high, coefficient in bands:
            if low <= value < high:
                return coefficient
        return 0.0

    return in_band


def _contacts_fit(rule: ContactsFit) -> FitFn:
    options = [
        (frozenset(v.strip().casefold() for v in o.values), o.coefficient) for o in rule.options
    ]

    def contacts(facts: LeadFacts, now: float) -> float:
        if not facts.contacts:  # most leads, at most events
            return 0.0
        present = {str(k).strip().casefold() for k, v in facts.contacts.items() if v}
        total = sum(c for values, c in options if not present.isdisjoint(values))
        return min(1.0, total)

    return contacts


# --- fit explanations: the coefficient as above, with what gave it (breakdowns only) ----------


def _match_why(rule: MatchFit) -> FitExplainFn:
    options = [
        (frozenset(v.strip().casefold() for v in o.values), tuple(o.values), o.coefficient)
        for o in rule.options
    ]
    field, weight = rule.field, rule.weight

    def why(
        value: Any = None, option: tuple[str, ...] | None = None, coefficient: float = 0.0
    ) -> Why:
        return Why(
            criterion="match", field=field, weight=weight, value=value, option=option,
            coefficient=coefficient,
        )  # fmt: skip

    if field == "interests":

        def interests(facts: LeadFacts, now: float) -> Why:
            seen = {str(k).strip().casefold(): str(k) for k, v in facts.interests.items() if v}
            for values, names, coefficient in options:
                matched = tuple(sorted(name for key, name in seen.items() if key in values))
                if matched:
                    return why(matched, names, coefficient)
            return why()

        return interests
    trait = field.removeprefix("traits.") if field.startswith("traits.") else None

    def match(facts: LeadFacts, now: float) -> Why:
        value = facts.traits.get(trait) if trait is not None else getattr(facts, field)
        if value is None or isinstance(value, Mapping | list):
            return why()
        key = str(value).strip().casefold()
        for values, names, coefficient in options:  # the first matching option wins
            if key in values:
                return why(str(value), names, coefficient)
        return why(str(value))

    return match


def _range_why(rule: RangeFit) -> FitExplainFn:
    field, weight = rule.field, rule.weight
    bands = [
        (-math.inf if b.min is None else b.min, math.inf if b.max is None else b.max, b)
        for b in rule.bands
    ]

    def in_band(facts: LeadFacts, now: float) -> Why:
        if field == "recency_hours":
            if facts.last_seen_at is None:
                return Why(criterion="range", field=field, weight=weight, coefficient=0.0)
            value = max(0.0, (now - facts.last_seen_at.timestamp()) / 3600.0)
        else:
            value = float(getattr(facts, field))
        for low, high, band in bands:
            if low <= value < high:
                return Why(
                    criterion="range", field=field, weight=weight, value=value,
                    band_min=band.min, band_max=band.max, coefficient=band.coefficient,
                )  # fmt: skip
        return Why(criterion="range", field=field, weight=weight, value=value, coefficient=0.0)

    return in_band


def _contacts_why(rule: ContactsFit) -> FitExplainFn:
    options = [
        (frozenset(v.strip().casefold() for v in o.values), o.coefficient) for o in rule.options
    ]
    weight = rule.weight

    def contacts(facts: LeadFacts, now: float) -> Why:
        present = {str(k).strip().casefold(): str(k) for k, v in facts.contacts.items() if v}
        total = sum(c for values, c in options if not values.isdisjoint(present))
        matched = tuple(
            sorted(name for key, name in present.items() if any(key in v for v, _ in options))
        )
        return Why(
            criterion="contacts", field="contacts", weight=weight,
            value=tuple(sorted(present.values())), option=matched, coefficient=min(1.0, total),
        )  # fmt: skip

    return contacts
