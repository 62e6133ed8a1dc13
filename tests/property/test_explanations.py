"""Breakdown explanations (`BreakdownItem.why`, app/scoring/explain.py) under arbitrary events
and profiles: each line's structured fields recompute its points, the lines add up to the
score, and the sentence says the line's points."""

import math
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.scoring import engine, explain
from app.scoring.defaults import default_rule_set
from app.scoring.schemas import parse_rule_set
from tests.factories import T0
from tests.property.test_engine_replay import CUSTOM, build, events_data

# Every kind of fit criterion, a negative weight and a low max_score (so the score's bounds
# show as a line of their own), on top of the custom set's caps, decay and negative points.
FITTED = {
    **CUSTOM,
    "max_score": 60,
    "fit": [
        {"id": "city", "label": "City", "type": "match", "field": "city", "weight": 20,
         "options": [{"values": ["Kazan"], "coefficient": 0.8},
                     {"values": ["Moscow", "kazan"], "coefficient": 1}]},
        {"id": "fridges", "type": "match", "field": "interests", "weight": 10,
         "options": [{"values": ["tv"], "coefficient": 0.3},
                     {"values": ["fridges", "freezers"], "coefficient": 1}]},
        {"id": "vip", "type": "match", "field": "traits.tier", "weight": -7,
         "options": [{"values": ["bronze"], "coefficient": 1}]},
        {"id": "returning", "type": "range", "field": "visits", "weight": 10,
         "bands": [{"max": 2, "coefficient": 0.1}, {"min": 2, "max": 4, "coefficient": 0.5},
                   {"min": 4, "coefficient": 1}]},
        {"id": "recent", "type": "range", "field": "recency_hours", "weight": 15,
         "bands": [{"max": 24, "coefficient": 1}, {"min": 24, "max": 72, "coefficient": 0.4}]},
        {"id": "reachable", "type": "contacts", "weight": 20,
         "options": [{"values": ["phone"], "coefficient": 0.7},
                     {"values": ["email", "telegram"], "coefficient": 0.5}]},
    ],
}  # fmt: skip
RULE_SETS = {
    "default": engine.compile_rule_set(default_rule_set()),
    "fitted": engine.compile_rule_set(parse_rule_set(FITTED)),
}

facts = st.builds(
    engine.LeadFacts,
    city=st.sampled_from([None, "Kazan", "KAZAN ", "Moscow", "Omsk"]),
    traits=st.fixed_dictionaries({}, optional={"tier": st.sampled_from(["bronze", "gold"])}),
    contacts=st.dictionaries(st.sampled_from(["phone", "email", "telegram"]), st.just("x")),
    visits=st.integers(min_value=0, max_value=6),
    interests=st.dictionaries(st.sampled_from(["tv", "fridges", "Freezers"]), st.integers(0, 3)),
    last_seen_at=st.none() | st.just(T0),
)


def recomputed(item: engine.BreakdownItem) -> float:
    """The line's points from its structured fields alone, as the API documents them."""
    why = item.why
    if item.kind == "hard":
        return 0.0
    if item.kind == "limit":
        assert why.limit is not None
        assert why.rules_total is not None
        return why.limit - why.rules_total
    if item.kind == "fit":
        assert why.coefficient is not None
        assert why.weight is not None
        return why.coefficient * why.weight
    assert why.count is not None
    assert why.points_each is not None
    assert why.total is not None
    assert why.total == pytest.approx(why.count * why.points_each)
    if why.half_life is None:
        decayed = why.total
    else:
        assert why.value_at_last_event is not None
        assert why.age is not None
        decayed = why.value_at_last_event * 2 ** (-why.age / why.half_life)
    assert why.decayed == pytest.approx(decayed, rel=1e-9, abs=1e-9)
    cap = math.inf if why.cap is None else why.cap
    bounded = min(decayed, cap) if why.points_each >= 0 else max(decayed, -cap)
    assert why.capped == (bounded != decayed)
    return bounded


@settings(
    max_examples=30,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(
    name=st.sampled_from(sorted(RULE_SETS)),
    data=events_data,
    lead=facts,
    hours_later=st.sampled_from([0, 5, 30, 24 * 9]),
)
def test_the_fields_recompute_each_line_and_the_lines_add_up_to_the_score(
    name, data, lead, hours_later
):
    compiled = RULE_SETS[name]
    events = build(data)
    now = max(e.at for e in events) + timedelta(hours=hours_later)
    result = engine.replay(compiled, events, lead, now)
    for item in result.breakdown:
        assert item.points == pytest.approx(round(recomputed(item), 2), abs=1e-9), item
        text = explain.sentence(item)
        assert text.startswith(f"{item.label}: ")
        if item.kind in ("behaviour", "fit"):
            assert explain.number(item.points) in text, text
            assert ("negative" in text) == (item.points < 0), text
    total = sum(item.points for item in result.breakdown)
    assert total == pytest.approx(result.score, abs=0.005 * len(result.breakdown) + 1e-9)
