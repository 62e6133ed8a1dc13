"""The scoring engine (app/scoring/engine.py) under arbitrary event sequences (Hypothesis).

What the engine promises, and what is tested here:
- Incremental = replay: applying events one by one (`apply_event`, ingestion's `advance`)
  and then evaluating at `now` gives exactly what `replay` (re-scoring, preview) gives over
  the same sequence in the same order: state, score, temperature, the time it became hot.
- Arrival order: events that arrive in another order than they happened (each carrying the
  visit it belongs to) give the same score at any `now` after them, and the same rule state
  (events counted, points before and after decay, which event counted for a once-per-lead or
  once-per-visit rule, the events the breakdown lists, until when a hard rule holds the lead
  hot), within the engine's memory bounds: at most 16 visits remembered per once-per-visit
  rule, at most 8 events kept per step of a hard-rule sequence. The temperature is not
  promised: it moves with the path (a late event is evaluated at the lead's last evaluation
  time, never backwards). The visit is the caller's: ingestion rebuilds a lead that receives
  a late event from its stored events, so each event carries its own (tests/simulation's
  invariant `late_event_visits`).
"""

import math
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from app.scoring import engine, hard_rules
from app.scoring.defaults import default_rule_set
from app.scoring.schemas import parse_rule_set
from tests.factories import T0

SCORED = (
    "page", "Product Viewed", "Product Added", "Product Removed", "Checkout Started",
    "Cart Abandoned", "Order Completed", "Subscribed", "Unsubscribed", "Contact Requested",
)  # fmt: skip
# Every frequency, a condition on a property, per-rule decay and a three-step sequence.
CUSTOM = {
    "version": 1,
    "name": "property test",
    "thresholds": {"warm": 20, "hot": 45},
    "hysteresis_points": 4,
    "min_hold": "20m",
    "decay": {"half_life": "2d"},
    "behaviour": [
        {"id": "view", "event": "Product Viewed", "points": 4, "cap": 20},
        {"id": "pricey", "event": "Product Viewed", "points": 6, "frequency": "once_per_visit",
         "conditions": [{"field": "properties.price", "op": "gte", "value": 500}]},
        {"id": "add", "event": "Product Added", "points": 12, "half_life": "6h"},
        {"id": "first-order", "event": "Order Completed", "points": 25,
         "frequency": "once_per_lead"},
        {"id": "unsub", "event": "Unsubscribed", "points": -20, "cap": 20},
        {"id": "any-return", "event": "*", "points": 3, "frequency": "once_per_visit",
         "conditions": [{"field": "visit", "op": "gte", "value": 2}]},
    ],
    "hard": [
        {"id": "buying", "steps": [{"event": "Product Added"}, {"event": "Checkout Started"},
         {"event": "Cart Abandoned"}], "within": "2h", "hold": "3h"},
    ],
}  # fmt: skip
RULE_SETS = {
    "default": engine.compile_rule_set(default_rule_set()),
    "custom": engine.compile_rule_set(parse_rule_set(CUSTOM)),
}
FACTS = engine.LeadFacts(
    city="Kazan", contacts={"email": "a@b.example"}, visits=3, page_views=4,
    time_on_site_seconds=400.0, orders=0, last_seen_at=T0, interests={"fridges": 2},
)  # fmt: skip

kinds = st.one_of(st.sampled_from(SCORED), st.text(min_size=1, max_size=12))
events_data = st.lists(
    st.tuples(
        kinds,
        st.integers(min_value=0, max_value=4 * 24 * 3600 * 1000),  # ms after T0
        st.fixed_dictionaries({}, optional={"price": st.sampled_from([99, 499, 500, 1299])}),
    ),
    min_size=1,
    max_size=40,
)


def build(data: list[tuple[str, int, dict[str, Any]]]) -> list[engine.ScoringEvent]:
    """Events in time order, with visit numbers as ingestion gives them (30 min of silence
    starts a new visit) and distinct message ids."""
    out, visit, last = [], 0, None
    for n, (kind, ms, props) in enumerate(sorted(data, key=lambda d: d[1])):
        at = T0 + timedelta(milliseconds=ms)
        if last is None or at - last > timedelta(minutes=30):
            visit += 1
        last = at
        out.append(engine.ScoringEvent(f"m{n:03d}", kind, props, at, visit))
    return out


def one_by_one(compiled: engine.CompiledRuleSet, events: list[engine.ScoringEvent]) -> Any:
    state = engine.empty_state()
    fast = engine.empty_state()
    for event in events:
        state = engine.apply_event(compiled, state, event, FACTS).state
        engine.advance(compiled, fast, event, FACTS)
        assert fast == state  # ingestion's in-place path is apply_event exactly
    return state


def order_free(
    compiled: engine.CompiledRuleSet, state: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """What arrival order must not change (see the module's docstring). A rule's decayed
    total is compared at `now`: its reference time is the latest event it saw, which a late
    event that replaces the counted one (once per lead or visit) leaves where it was."""
    rules = {}
    for rule_id, e in state["rules"].items():
        value = e["v"] * math.exp(
            -compiled.behaviour[rule_id].decay_rate * (now.timestamp() - e["t"])
        )
        rules[rule_id] = (e["n"], e["raw"], pytest.approx(value, rel=1e-9, abs=1e-9),
                          e.get("first"), e.get("visits"), e["ids"])  # fmt: skip
    hard = {rule_id: (e["until"], e["n"], e["ids"]) for rule_id, e in state["hard"].items()}
    return {"rules": rules, "hard": hard}


common = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@common
@given(name=st.sampled_from(sorted(RULE_SETS)), data=events_data, shuffle=st.randoms())
def test_events_one_by_one_equal_a_replay(name, data, shuffle):
    compiled = RULE_SETS[name]
    events = build(data)
    shuffle.shuffle(events)  # any arrival order: the same order for both
    now = max(e.at for e in events) + timedelta(hours=1)
    incremental = engine.evaluate(compiled, one_by_one(compiled, events), FACTS, now)
    replayed = engine.replay(compiled, events, FACTS, now)
    assert replayed.state == incremental.state
    assert (replayed.score, replayed.temperature, replayed.became_hot_at) == (
        incremental.score,
        incremental.temperature,
        incremental.became_hot_at,
    )


@common
@given(
    name=st.sampled_from(sorted(RULE_SETS)),
    data=events_data,
    shuffle=st.randoms(),
    later=st.integers(min_value=0, max_value=10 * 24 * 3600),
)
def test_arrival_order_does_not_change_the_score(name, data, shuffle, later):
    compiled = RULE_SETS[name]
    events = build(data)
    assume(events[-1].visit <= engine.RECENT_VISITS)
    assume(max(Counter(e.kind for e in events).values()) <= hard_rules.STEP_MEMORY)
    arrived = list(events)
    shuffle.shuffle(arrived)
    now = events[-1].at + timedelta(seconds=later)
    in_time = engine.evaluate(compiled, one_by_one(compiled, events), FACTS, now)
    shuffled = engine.evaluate(compiled, one_by_one(compiled, arrived), FACTS, now)
    assert order_free(compiled, shuffled.state, now) == order_free(compiled, in_time.state, now)
    # The same terms summed in another order: equal up to the last cent's rounding.
    assert shuffled.score == pytest.approx(in_time.score, abs=0.011)
