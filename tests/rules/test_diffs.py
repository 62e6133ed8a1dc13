"""The diff of two stored rule-set documents, leaf by leaf (app.scoring.diffs)."""

from app.scoring.diffs import diff_definitions, field_changes


def test_numbers_equal_in_json_are_no_change_but_a_boolean_is_not_a_number() -> None:
    assert list(field_changes({"points": 10}, {"points": 10.0})) == []
    assert list(field_changes({"value": 1}, {"value": True})) == [
        {"path": "value", "old": 1, "new": True}
    ]


def test_a_list_that_grew_is_one_change_and_one_of_the_same_length_is_item_by_item() -> None:
    old = {"values": ["Kazan"], "steps": [{"event": "a"}, {"event": "b"}]}
    new = {"values": ["Kazan", "Omsk"], "steps": [{"event": "a"}, {"event": "c"}]}
    assert list(field_changes(old, new)) == [
        {"path": "values", "old": ["Kazan"], "new": ["Kazan", "Omsk"]},
        {"path": "steps.1.event", "old": "b", "new": "c"},
    ]


def test_a_rule_moved_to_another_list_is_changed_with_its_kind() -> None:
    old = {"name": "a", "behaviour": [{"id": "x", "event": "Checkout Started", "points": 5}]}
    new = {"name": "a", "hard": [{"id": "x", "steps": [{"event": "Checkout Started"}]}]}
    diff = diff_definitions(old, new)
    assert (diff["added"], diff["removed"], diff["settings"]) == ([], [], [])
    [change] = diff["changed"]
    assert (change["id"], change["kind"]) == ("x", "hard")
    assert change["changes"][0] == {"path": "kind", "old": "behaviour", "new": "hard"}
    assert {c["path"] for c in change["changes"]} == {"kind", "event", "points", "steps"}
