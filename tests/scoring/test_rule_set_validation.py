"""parse_rule_set: durations, and errors that name the rule and the field (for a 422)."""

from __future__ import annotations

from typing import Any

import pytest

from app.scoring.defaults import DEFAULT_RULE_SET, default_rule_set
from app.scoring.schemas import RuleSetInvalid, parse_duration, parse_rule_set

from .helpers import rule, rule_set_data


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("7d", 604800), ("12h", 43200), ("30m", 1800), ("45s", 45), ("1h30m", 5400),
     ("2w", 1209600), ("1.5h", 5400), (90, 90), (2.5, 2.5), ("90", 90), (" 7D ", 604800)],
)  # fmt: skip
def test_durations_parse_to_seconds(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["7 days", "soon", "-5", -5, "d", True, None, [], "1x"])
def test_bad_durations_are_rejected(text: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def _errors(**overrides: Any) -> list[dict[str, Any]]:
    with pytest.raises(RuleSetInvalid) as caught:
        parse_rule_set(rule_set_data(**overrides))
    assert all(set(e) == {"rule", "field", "message"} for e in caught.value.errors)
    return caught.value.errors


def _one(**overrides: Any) -> tuple[str | None, str | None, str]:
    [error] = _errors(**overrides)
    return error["rule"], error["field"], error["message"]


def _condition(op: str, value: Any, field: str = "properties.price") -> list[dict[str, Any]]:
    return [
        rule("view", "Product Viewed", 3, conditions=[{"field": field, "op": op, "value": value}])
    ]


def test_default_rule_set_is_valid() -> None:
    rule_set = default_rule_set()
    assert rule_set.thresholds.hot == 60
    assert DEFAULT_RULE_SET["behaviour"][0]["id"] == "page-view"  # parsing did not mutate it


def test_duplicate_ids_name_the_rule_and_field() -> None:
    behaviour = [rule("view", "Product Viewed", 3), rule("view", "page", 1)]
    rule_id, field, message = _one(behaviour=behaviour)
    assert (rule_id, field) == ("view", "behaviour.1.id")
    assert "duplicate" in message


def test_ids_are_unique_across_rule_kinds() -> None:
    hard = [{"id": "view", "steps": [{"event": "x"}], "hold": "1h"}]
    rule_id, field, _ = _one(behaviour=[rule("view", "Product Viewed", 3)], hard=hard)
    assert (rule_id, field) == ("view", "hard.0.id")


@pytest.mark.parametrize("bad_id", ["Has Space", "UPPER", "", "-lead", "a" * 65])
def test_ids_are_slugs(bad_id: str) -> None:
    assert _one(behaviour=[rule(bad_id, "page", 1)])[:2] == (bad_id, "behaviour.0.id")


def test_invalid_regex_is_reported_at_load_time() -> None:
    rule_id, field, message = _one(behaviour=_condition("matches", "([a-z"))
    assert (rule_id, field) == ("view", "behaviour.0.conditions.0.value")
    assert "regular expression" in message


@pytest.mark.parametrize(
    ("op", "value"),
    [("gt", "ten"), ("gte", True), ("lt", None), ("in", []), ("in", "a"), ("not_in", [{}]),
     ("exists", "yes"), ("eq", None), ("eq", [1]), ("contains", {"a": 1}), ("matches", 5)],
)  # fmt: skip
def test_condition_values_must_fit_the_operator(op: str, value: Any) -> None:
    assert _one(behaviour=_condition(op, value))[:2] == ("view", "behaviour.0.conditions.0.value")


def test_unknown_operator_and_field() -> None:
    assert _one(behaviour=_condition("like", "x"))[:2] == ("view", "behaviour.0.conditions.0.op")
    for field in ("price", "properties.", "context.ip", "properties..a"):
        assert _one(behaviour=_condition("eq", "x", field))[1] == "behaviour.0.conditions.0.field"


def test_typos_in_keys_are_errors_not_defaults() -> None:
    rule_id, field, _ = _one(behaviour=[rule("sub", "Subscribed", 10, frequncy="once_per_lead")])
    assert (rule_id, field) == ("sub", "behaviour.0.frequncy")


@pytest.mark.parametrize(
    ("extra", "field"),
    [({"frequency": "hourly"}, "frequency"), ({"cap": -1}, "cap"),
     ({"half_life": "soon"}, "half_life"), ({"half_life": 0}, "half_life"),
     ({"points": float("nan")}, "points")],
)  # fmt: skip
def test_behaviour_rule_fields(extra: dict[str, Any], field: str) -> None:
    bad = {**rule("r", "page", 1), **extra}
    assert _one(behaviour=[bad])[:2] == ("r", f"behaviour.0.{field}")


def test_fit_coefficients_are_between_zero_and_one() -> None:
    fit = [{"id": "geo", "type": "match", "field": "city", "weight": 20,
            "options": [{"values": ["Moscow"], "coefficient": 1.5}]}]  # fmt: skip
    assert _one(fit=fit)[:2] == ("geo", "fit.0.options.0.coefficient")


def test_fit_fields_and_bands() -> None:
    match = {"id": "m", "type": "match", "field": "ip", "weight": 1,
             "options": [{"values": ["x"], "coefficient": 1}]}  # fmt: skip
    assert _one(fit=[match])[:2] == ("m", "fit.0.field")
    band = {"id": "r", "type": "range", "field": "visits", "weight": 1,
            "bands": [{"min": 5, "max": 2, "coefficient": 1}]}  # fmt: skip
    assert _one(fit=[band])[:2] == ("r", "fit.0.bands.0.max")
    unknown = {"id": "u", "type": "range", "field": "shoe_size", "weight": 1, "bands": []}
    assert {e["field"] for e in _errors(fit=[unknown])} == {"fit.0.field", "fit.0.bands"}
    assert _one(fit=[{"id": "t", "type": "vibes", "weight": 1}])[:2] == ("t", "fit.0")


def test_hard_rule_windows() -> None:
    sequence = {"id": "seq", "steps": [{"event": "a"}, {"event": "b"}]}
    assert _one(hard=[sequence])[:2] == ("seq", "hard.0.within")
    single = {"id": "one", "steps": [{"event": "a"}]}
    assert _one(hard=[single])[:2] == ("one", "hard.0.hold")
    assert _one(hard=[{"id": "none", "steps": [], "hold": "1h"}])[:2] == ("none", "hard.0.steps")


def test_thresholds_must_be_ordered_and_fit_max_score() -> None:
    assert _one(thresholds={"warm": 60, "hot": 30})[:2] == (None, "thresholds.hot")
    assert _one(thresholds={"warm": 30, "hot": 120})[:2] == (None, "thresholds.hot")
    assert _one(hysteresis_points=40)[:2] == (None, "hysteresis_points")
    assert _one(min_hold="later")[:2] == (None, "min_hold")


def test_missing_top_level_fields() -> None:
    with pytest.raises(RuleSetInvalid) as caught:
        parse_rule_set({"name": "x"})
    assert {(e["rule"], e["field"]) for e in caught.value.errors} == {
        (None, "version"),
        (None, "thresholds"),
    }


def test_all_errors_are_reported_together_with_a_readable_message() -> None:
    behaviour = [rule("a", "page", 1, cap=-1), rule("b", "page", 1, frequency="x")]
    errors = _errors(behaviour=behaviour)
    assert [(e["rule"], e["field"]) for e in errors] == [
        ("a", "behaviour.0.cap"),
        ("b", "behaviour.1.frequency"),
    ]
    assert not errors[0]["message"].startswith("Value error")
