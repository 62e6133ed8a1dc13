"""`engine.replay` (preview's and re-scoring's inlined loop) gives exactly what its reference
`engine._replay_reference` gives: random rule sets (behaviour rules of every frequency, with
and without decay, caps and conditions; hard rules of one or more steps; fit rules including
recency), random thresholds, hysteresis and minimum holds, and random histories (in time order
as stored, with identical timestamps, or in any order), random facts (the lead's last event
before, at or after the history's end) and evaluation times. Equal means the whole result:
state dict, score, temperature, breakdown, the time the lead became hot; with `explain=False`
(preview) all of it but the breakdown, which is left empty."""

import dataclasses
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.scoring import engine
from app.scoring.schemas import parse_rule_set
from tests.factories import T0

KINDS = ["page", "view", "add", "checkout", "order", "*"]
EVENT_KINDS = [*KINDS, "other"]  # "*" as an event's own kind meets the "*" rules twice

half_lives = st.one_of(
    st.none(), st.just("never"), st.integers(60, 14 * 86400), st.integers(60, 3600)
)
conditions = st.one_of(
    st.just([]),
    st.builds(lambda n: [{"field": "visit", "op": "gte", "value": n}], st.integers(1, 4)),
    st.builds(
        lambda op, n: [{"field": "visit", "op": op, "value": n}],
        st.sampled_from(["gt", "lt", "lte"]),
        st.one_of(st.integers(0, 4), st.floats(0, 4, allow_nan=False)),
    ),
    st.just([{"field": "properties.price", "op": "gte", "value": 500}]),
)


@st.composite
def behaviour_rules(draw: st.DrawFn, n: int) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "id": f"b{n}",
        "event": draw(st.sampled_from(KINDS)),
        # Some points just off a whole number, so scores land within a rounding of thresholds.
        "points": draw(
            st.one_of(
                st.integers(-20, 40),
                st.floats(-20, 40, allow_nan=False),
                st.sampled_from([0.004, 4.996, 9.995, 19.996, 10.005]),
            )
        ),
        "frequency": draw(st.sampled_from(["every_time", "once_per_lead", "once_per_visit"])),
        "conditions": draw(conditions),
        "half_life": draw(half_lives),
    }
    cap = draw(st.one_of(st.none(), st.integers(0, 60)))
    if cap is not None:
        rule["cap"] = cap
    return rule


@st.composite
def hard_rules(draw: st.DrawFn, n: int) -> dict[str, Any]:
    steps = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=3))
    rule: dict[str, Any] = {"id": f"h{n}", "steps": [{"event": k} for k in steps]}
    rule["within"] = draw(st.integers(60, 6 * 3600))
    rule["hold"] = draw(st.integers(60, 6 * 3600))
    return rule


fit_rules = st.sampled_from(
    [
        {"id": "recency", "type": "range", "field": "recency_hours", "weight": 5,
         "bands": [{"max": 1, "coefficient": 1.0}, {"min": 1, "max": 24, "coefficient": 0.5}]},
        {"id": "recency-down", "type": "range", "field": "recency_hours", "weight": -3,
         "bands": [{"min": 0.5, "coefficient": 1.0}]},
        {"id": "visits", "type": "range", "field": "visits", "weight": 5,
         "bands": [{"min": 2, "coefficient": 0.6}]},
        {"id": "contacts", "type": "contacts", "weight": 10,
         "options": [{"values": ["email"], "coefficient": 0.5}]},
    ]
)  # fmt: skip


@st.composite
def rule_sets(draw: st.DrawFn) -> engine.CompiledRuleSet:
    behaviour = [draw(behaviour_rules(n)) for n in range(draw(st.integers(0, 6)))]
    hard = [draw(hard_rules(n)) for n in range(draw(st.integers(0, 2)))]
    fit = draw(st.lists(fit_rules, max_size=3, unique_by=lambda f: f["id"]))
    max_score = draw(st.sampled_from([100, 40]))
    # Near what a few events score, so temperatures move; 0 (warm at once) now and then.
    warm = draw(st.one_of(st.just(0), st.integers(0, 30)))
    hot = draw(st.integers(warm + 1, min(warm + 30, max_score)))
    data = {
        "version": 1,
        "name": "fast path",
        "max_score": max_score,
        "thresholds": {"warm": warm, "hot": hot},
        "hysteresis_points": draw(st.integers(0, min(10, hot - warm))),
        "min_hold": draw(st.sampled_from([0, 0, 600, 7200])),
        "decay": {"half_life": draw(st.one_of(st.none(), st.integers(600, 7 * 86400)))},
        "behaviour": behaviour,
        "hard": hard,
        "fit": fit,
    }
    return engine.compile_rule_set(parse_rule_set(data))


@st.composite
def histories(draw: st.DrawFn) -> list[engine.ScoringEvent]:
    # Seconds after T0, from a small range half the time so identical timestamps are common.
    span = draw(st.sampled_from([30, 6 * 3600, 4 * 86400]))
    data = draw(
        st.lists(
            st.tuples(
                st.sampled_from(EVENT_KINDS),
                st.integers(0, span),
                st.fixed_dictionaries({}, optional={"price": st.sampled_from([99, 500])}),
            ),
            max_size=60,
        )
    )
    events, visit, last = [], 0, None
    for n, (kind, seconds, props) in enumerate(sorted(data, key=lambda d: d[1])):
        at = T0 + timedelta(seconds=seconds)
        if last is None or at - last > timedelta(minutes=30):
            visit += 1
        last = at
        events.append(engine.ScoringEvent(f"m{n:03d}", kind, props, at, visit))
    if draw(st.booleans()):  # late events (rebuilt leads keep time order; callers may not)
        events = draw(st.permutations(events))
    return events


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(
    compiled=rule_sets(),
    events=histories(),
    seen=st.one_of(st.none(), st.integers(-3600, 5 * 86400)),
    later=st.integers(-3600, 10 * 86400),
    email=st.booleans(),
)
def test_replay_equals_its_reference(compiled, events, seen, later, email):
    facts = engine.LeadFacts(
        visits=max((e.visit for e in events), default=0),
        contacts={"email": "a@b.example"} if email else {},
        last_seen_at=None if seen is None else T0 + timedelta(seconds=seen),
    )
    now = max((e.at for e in events), default=T0) + timedelta(seconds=later)
    fast = engine.replay(compiled, events, facts, now)
    reference = engine._replay_reference(compiled, events, facts, now)
    assert fast == reference
    assert fast.state == reference.state  # (also in `==`; spelled out: the stored state)
    # Preview's replays skip the breakdown, and nothing else.
    unexplained = engine.replay(compiled, events, facts, now, explain=False)
    assert unexplained == dataclasses.replace(reference, breakdown=[])
    evaluated = engine.evaluate(compiled, fast.state, facts, now, explain=False)
    assert evaluated == dataclasses.replace(
        engine.evaluate(compiled, fast.state, facts, now), breakdown=[]
    )


@settings(max_examples=50, deadline=None, derandomize=True)
@given(compiled=rule_sets(), events=histories())
def test_replay_takes_any_iterable(compiled, events):
    now = T0 + timedelta(days=5)
    facts = engine.LeadFacts(last_seen_at=max((e.at for e in events), default=None))
    assert engine.replay(compiled, iter(events), facts, now) == engine._replay_reference(
        compiled, events, facts, now
    )


def test_a_hot_lead_cooling_into_the_margin_below_warm_stays_warm():
    """Hot, then decayed to 16.99 (warm 20 less a margin of 5): warm, in both."""
    compiled = engine.compile_rule_set(
        parse_rule_set(
            {
                "version": 1,
                "name": "margin",
                "thresholds": {"warm": 20, "hot": 30},
                "hysteresis_points": 5,
                "min_hold": 0,
                "behaviour": [{"id": "view", "event": "view", "points": 12, "half_life": "1h"}],
            }
        )  # fmt: skip
    )
    events = [engine.ScoringEvent(f"m{n}", "view", {}, T0, 1) for n in range(3)]
    events.append(engine.ScoringEvent("m3", "other", {}, T0 + timedelta(seconds=3900), 3))
    now = T0 + timedelta(seconds=3900)
    fast = engine.replay(compiled, events, engine.LeadFacts(), now)
    assert fast == engine._replay_reference(compiled, events, engine.LeadFacts(), now)
    assert (fast.score, fast.temperature) == (16.99, "warm")


def check(data: dict[str, Any], events: list[engine.ScoringEvent]) -> engine.ScoreResult:
    compiled = engine.compile_rule_set(parse_rule_set({"version": 1, "name": "t", **data}))
    now = max(e.at for e in events)
    fast = engine.replay(compiled, events, engine.LeadFacts(), now)
    assert fast == engine._replay_reference(compiled, events, engine.LeadFacts(), now)
    return fast


def test_a_score_rounding_up_to_the_threshold_reaches_it():
    """19.996 points show as 20.00: warm at 20, though the unrounded total is below."""
    data = {
        "thresholds": {"warm": 20, "hot": 30},
        "behaviour": [{"id": "v", "event": "view", "points": 19.996, "half_life": "never"}],
    }
    events = [engine.ScoringEvent("m1", "view", {}, T0, 1)]
    events.append(engine.ScoringEvent("m2", "other", {}, T0 + timedelta(hours=1), 3))
    fast = check(data, events)
    assert fast.state["since"] == T0.timestamp()  # warm from the first event on


def test_an_earlier_id_at_the_same_moment_counts_for_its_visit():
    """Once per visit: of two events at one moment, the smaller message id is the one that
    counts, whichever arrives first."""
    data = {
        "thresholds": {"warm": 20, "hot": 30},
        "behaviour": [{"id": "v", "event": "view", "points": 5, "frequency": "once_per_visit"}],
    }
    events = [engine.ScoringEvent(m, "view", {}, T0, 1) for m in ("m2", "m1")]
    fast = check(data, events)
    assert fast.state["rules"]["v"]["visits"] == {"1": [T0.timestamp(), "m1"]}


def test_a_cold_lead_warms_as_a_negative_rule_decays():
    """Cold at 20 - 15; an hour on, the -15 has decayed away: warm."""
    data = {
        "thresholds": {"warm": 10, "hot": 30},
        "behaviour": [
            {"id": "up", "event": "view", "points": 20, "half_life": "never"},
            {"id": "down", "event": "unsub", "points": -15, "half_life": "60s"},
        ],
    }
    events = [
        engine.ScoringEvent("m1", "unsub", {}, T0, 1),
        engine.ScoringEvent("m2", "view", {}, T0, 1),
        engine.ScoringEvent("m3", "other", {}, T0 + timedelta(hours=1), 3),
    ]
    assert check(data, events).state["since"] == (T0 + timedelta(hours=1)).timestamp()


def test_a_warm_threshold_of_zero_warms_a_negative_score():
    """Warm at 0: a score of 0 (a negative total, clamped) is warm."""
    data = {
        "thresholds": {"warm": 0, "hot": 30},
        "behaviour": [{"id": "down", "event": "unsub", "points": -5}],
        "fit": [{"id": "f", "type": "range", "field": "visits", "weight": -5,
                 "bands": [{"min": 0, "coefficient": 1.0}]}],
    }  # fmt: skip
    fast = check(data, [engine.ScoringEvent("m1", "unsub", {}, T0, 1)])
    assert fast.state["since"] == T0.timestamp()
