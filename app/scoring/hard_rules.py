"""Hard rules: event sequences that make a lead hot whatever its score.

Each multi-step rule keeps, per step, the few most recent matching events (as [t, message_id],
at most STEP_MEMORY, so the state stays bounded); a chain is the steps in strict event-time
order with the first no earlier than `within` before the last. Chains are searched again
whenever a step arrives, so a late-arriving earlier step still completes a sequence: the outcome
does not depend on arrival order, unless a step's event arrives after STEP_MEMORY newer events
matching the same step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.scoring.types import Check, CompiledHard, ScoringEvent

STEP_MEMORY = 8  # matching events kept per step
RECENT_EVENTS = 5


def record(
    matches: tuple[tuple[CompiledHard, int, Check | None], ...],
    hard_state: dict[str, Any],
    event: ScoringEvent,
    t: float,
) -> None:
    """Note an event against every hard-rule step it satisfies; fire completed rules."""
    key = [t, event.message_id]
    touched: list[tuple[CompiledHard, dict[str, Any]]] = []
    for rule, step, check in matches:
        if check is not None and not check(event):
            continue
        entry = hard_state.get(rule.id)
        if entry is None:
            entry = hard_state[rule.id] = {
                "steps": [[] for _ in range(rule.steps)] if rule.steps > 1 else [],
                "fired": [],
                "until": None,
                "n": 0,
                "ids": [],
            }
        if rule.steps == 1:
            _fire(entry, rule, [key])
            continue
        keys = entry["steps"][step]
        if key not in keys:
            keys.append(key)
            keys.sort()
            del keys[:-STEP_MEMORY]
        if all(other is not rule for other, _ in touched):
            touched.append((rule, entry))
    for rule, entry in touched:
        _find_chains(rule, entry)


def active(state: Mapping[str, Any], now: float) -> bool:
    """Whether any hard rule keeps the lead hot at `now`."""
    for entry in state["hard"].values():
        until = entry["until"]
        if until is not None and until > now:
            return True
    return False


def _fire(entry: dict[str, Any], rule: CompiledHard, chain: list[list[Any]]) -> None:
    until = chain[0][0] + rule.hold  # chain[0] is the last step
    if entry["until"] is None or until > entry["until"]:
        entry["until"] = until
    entry["n"] += 1
    ids = entry["ids"]
    for key in chain:
        if key not in ids:
            ids.append(key)
    ids.sort()
    del ids[:-RECENT_EVENTS]


def _find_chains(rule: CompiledHard, entry: dict[str, Any]) -> None:
    steps: list[list[list[Any]]] = entry["steps"]
    fired: list[list[Any]] = entry["fired"]
    for end in steps[-1]:
        if end in fired:
            continue
        chain = _chain_ending_at(steps, end, rule.within)
        if chain is not None:
            fired.append(end)
            _fire(entry, rule, chain)
    entry["fired"] = [k for k in fired if k in steps[-1]]


def _chain_ending_at(
    steps: list[list[list[Any]]], end: list[Any], within: float
) -> list[list[Any]] | None:
    # Greedy: for each earlier step the latest event before the next one leaves the most room.
    earliest = end[0] - within
    chain = [end]
    current = end
    for keys in reversed(steps[:-1]):
        best = None
        for key in keys:
            if key < current and key[0] >= earliest and (best is None or key > best):
                best = key
        if best is None:
            return None
        chain.append(best)
        current = best
    return chain
