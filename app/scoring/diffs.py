"""What changed between two rule-set versions, as stored (as they were sent): rules added,
removed and changed, matched by rule id across `behaviour`, `fit` and `hard`, each change
field by field (a dotted path, the old and the new value), and the rule set's own settings
(name, thresholds, hysteresis, decay, ...) the same way."""

from collections.abc import Iterator, Mapping
from typing import Any

RULE_LISTS = ("behaviour", "fit", "hard")
_MISSING = None  # a field absent on one side is answered as null on it


def field_changes(old: Any, new: Any, path: str = "") -> Iterator[dict[str, Any]]:
    """Each leaf that differs: objects key by key, lists of the same length item by item
    (`conditions.0.value`); anything else, or lists of other lengths, as a whole."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in [*old, *(k for k in new if k not in old)]:
            yield from field_changes(
                old.get(key, _MISSING), new.get(key, _MISSING), f"{path}.{key}" if path else key
            )
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            yield from field_changes(a, b, f"{path}.{index}" if path else str(index))
    elif old != new or type(old) is not type(new) and not _same_number(old, new):
        yield {"path": path, "old": old, "new": new}


def _same_number(a: Any, b: Any) -> bool:
    # 10 and 10.0 are one value (JSON does not tell them apart); True is not 1.
    numbers = (int, float)
    return (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and a == b
    )


def _rules(definition: Mapping[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {
        rule["id"]: (kind, rule)
        for kind in RULE_LISTS
        for rule in definition.get(kind) or []
        if isinstance(rule, dict) and "id" in rule
    }


def diff_definitions(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Rules `added`, `removed` and `changed` from `old` to `new`, and `settings` changed."""
    before, after = _rules(old), _rules(new)
    changed = []
    for rule_id, (kind, rule) in after.items():
        if rule_id not in before:
            continue
        old_kind, old_rule = before[rule_id]
        changes = list(field_changes(old_rule, rule))
        if old_kind != kind:  # moved from one list to another
            changes.insert(0, {"path": "kind", "old": old_kind, "new": kind})
        if changes:
            changed.append({"id": rule_id, "kind": kind, "changes": changes})
    settings = {k: v for k, v in new.items() if k not in RULE_LISTS}
    old_settings = {k: v for k, v in old.items() if k not in RULE_LISTS}
    return {
        "added": [
            {"id": i, "kind": kind, "rule": rule}
            for i, (kind, rule) in after.items()
            if i not in before
        ],
        "removed": [
            {"id": i, "kind": kind, "rule": rule}
            for i, (kind, rule) in before.items()
            if i not in after
        ],
        "changed": changed,
        "settings": list(field_changes(old_settings, settings)),
    }
