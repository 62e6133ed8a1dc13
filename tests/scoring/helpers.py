"""Builders for scoring tests: events, rule sets and facts (times from tests.factories)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from app.scoring.engine import (
    CompiledRuleSet,
    LeadFacts,
    ScoreResult,
    ScoringEvent,
    apply_event,
    compile_rule_set,
    empty_state,
    evaluate,
)
from app.scoring.schemas import parse_rule_set
from tests.factories import T0

_ids = itertools.count(1)


def event(
    kind: str,
    when: datetime = T0,
    *,
    visit: int = 1,
    url: str | None = None,
    message_id: str | None = None,
    **properties: Any,
) -> ScoringEvent:
    return ScoringEvent(
        message_id=message_id or f"m{next(_ids)}",
        kind=kind,
        properties=properties,
        at=when,
        visit=visit,
        url=url,
    )


def rule(rule_id: str, kind: str, points: float, **extra: Any) -> dict[str, Any]:
    return {"id": rule_id, "event": kind, "points": points, **extra}


def rule_set_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "version": 1,
        "name": "test",
        "thresholds": {"warm": 30, "hot": 60},
    }
    data.update(overrides)
    return data


def compiled(**overrides: Any) -> CompiledRuleSet:
    return compile_rule_set(parse_rule_set(rule_set_data(**overrides)))


def apply_all(
    rules: CompiledRuleSet,
    events: Iterable[ScoringEvent],
    facts: LeadFacts | None = None,
    state: dict[str, Any] | None = None,
) -> ScoreResult:
    """Apply events one at a time, as ingestion does; returns the last result."""
    facts = facts or LeadFacts()
    current = state if state is not None else empty_state()
    result = None
    for item in events:
        result = apply_event(rules, current, item, facts)
        current = result.state
    assert result is not None
    return result


def score_at(
    rules: CompiledRuleSet,
    events: Iterable[ScoringEvent],
    now: datetime,
    facts: LeadFacts | None = None,
) -> float:
    facts = facts or LeadFacts()
    return evaluate(rules, apply_all(rules, events, facts).state, facts, now).score


def points_by_rule(result: ScoreResult) -> dict[str, float]:
    return {item.rule_id: item.points for item in result.breakdown}
