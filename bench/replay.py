"""Replay's CPU cost: `engine.replay` and `scorer.stored_scoring_events` against their
references (`engine._replay_reference`, `scorer._stored_scoring_events_reference`), in memory
(no database), on bench/preview.py's generated shop at 10 and 100 events per lead.

Each timing is this process's CPU seconds (time.process_time), the minimum of --repeat runs,
so that other work on a shared machine inflates it little, with the garbage collector off.
Before timing, every lead's fast result is checked equal to the reference's (state, score,
temperature, breakdown...).

    .venv/bin/python bench/replay.py                    # the two shapes, markdown table
    .venv/bin/python bench/replay.py --full             # and 200,000 leads / ~1.87M events
"""

import argparse
import functools
import gc
import sys
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.scoring import engine, scorer  # noqa: E402
from app.scoring.scorer import default_definition, rule_set_for_version  # noqa: E402
from bench.preview import NOW, draft_rule_set, generate  # noqa: E402

VISIT_GAP = timedelta(minutes=30)
Rows = list[tuple[Any, ...]]


def histories(leads: int, per_lead: int, seed: int = 7) -> tuple[list[Any], list[Rows]]:
    """Each lead's facts and stored event rows, as preview reads them."""
    profiles, events = generate(uuid.UUID(int=1), leads, per_lead, seed)
    by_lead: dict[uuid.UUID, Rows] = {p["id"]: [] for p in profiles}
    for e in events:
        by_lead[e["lead_id"]].append(
            (e["message_id"], e["type"], e["name"], e["properties"], e["context"], e["timestamp"])
        )
    return [scorer.facts_from_profile(p) for p in profiles], list(by_lead.values())


def cpu_seconds(work: Callable[[], object], repeat: int) -> float:
    """Minimum over `repeat` runs, each with the cyclic garbage collector off: its passes
    cost in proportion to everything the process holds (the whole generated site), which
    would measure the bench's own heap rather than the function."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            start = time.process_time()
            work()
            best = min(best, time.process_time() - start)
        finally:
            gc.enable()
    return best


def same(a: engine.ScoreResult, b: engine.ScoreResult) -> bool:
    return (a.state, a.score, a.temperature, a.previous_temperature, a.changed) == (
        b.state,
        b.score,
        b.temperature,
        b.previous_temperature,
        b.changed,
    ) and (a.became_hot_at, a.breakdown, a.rule_set_version) == (
        b.became_hot_at,
        b.breakdown,
        b.rule_set_version,
    )


def measure(
    label: str, facts: list[Any], rows: list[Rows], rule_sets: dict[str, Any], repeat: int
) -> list[str]:
    events = sum(len(r) for r in rows)
    scored = [scorer.stored_scoring_events(r, VISIT_GAP) for r in rows]
    for r, converted in zip(rows, scored, strict=True):
        assert converted == scorer._stored_scoring_events_reference(r, VISIT_GAP)
    for compiled in rule_sets.values():
        for f, s in zip(facts, scored, strict=True):
            assert same(
                engine.replay(compiled, s, f, NOW), engine._replay_reference(compiled, s, f, NOW)
            )

    def replays(fn: Callable[..., engine.ScoreResult], compiled: Any) -> Callable[[], None]:
        def run() -> None:
            for f, s in zip(facts, scored, strict=True):
                fn(compiled, s, f, NOW)

        return run

    def conversions(fn: Callable[..., object]) -> Callable[[], None]:
        def run() -> None:
            for r in rows:
                fn(r, VISIT_GAP)

        return run

    out = []
    cases = [
        (f"replay ({name})", replays(engine._replay_reference, c), replays(engine.replay, c))
        for name, c in rule_sets.items()
    ]
    # Preview's own call: the draft, no breakdown (against the reference, which builds one).
    cases.append(
        (
            "replay (draft, explain=False)",
            replays(engine._replay_reference, rule_sets["draft"]),
            replays(functools.partial(engine.replay, explain=False), rule_sets["draft"]),
        )
    )
    cases.append(
        (
            "stored_scoring_events",
            conversions(scorer._stored_scoring_events_reference),
            conversions(scorer.stored_scoring_events),
        )
    )
    for what, reference, fast in cases:
        ref_s, fast_s = cpu_seconds(reference, repeat), cpu_seconds(fast, repeat)
        per_event = 1e6 / events
        out.append(
            f"| {label} | {what} | {ref_s:.3f} s ({ref_s * per_event:.2f} µs/event) "
            f"| {fast_s:.3f} s ({fast_s * per_event:.2f} µs/event) | {ref_s / fast_s:.2f}x |"
        )
        print(out[-1], file=sys.stderr, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000, help="events per shape")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--full", action="store_true", help="also 200,000 leads, ~1.87M events")
    args = parser.parse_args()
    # Preview replays each lead with the draft (and with the active rule set when it was
    # scored by another version); re-scoring with the active one: bench/preview.py's pair.
    rule_sets = {
        "active": engine.compile_rule_set(rule_set_for_version(default_definition(), 1)),
        "draft": engine.compile_rule_set(rule_set_for_version(draft_rule_set(), 2)),
    }
    lines = [
        "| shape | function | reference CPU | fast CPU | speed-up |",
        "|---|---|---|---|---|",
    ]
    for per_lead in (10, 100):
        facts, rows = histories(args.events // per_lead, per_lead)
        label = f"{len(rows):,} leads x {per_lead} events"
        lines += measure(label, facts, rows, rule_sets, args.repeat)
    if args.full:
        # 1.87M events over 200,000 leads: 130,000 leads of 9 events and 70,000 of 10.
        facts, rows = histories(130_000, 9, seed=8)
        more_facts, more_rows = histories(70_000, 10, seed=9)
        facts += more_facts
        rows += more_rows
        label = f"{len(rows):,} leads, {sum(map(len, rows)):,} events"
        lines += measure(label, facts, rows, rule_sets, 1)
    full = " (1 run for the full shape)" if args.full else ""
    print(
        f"CPU seconds, min of {args.repeat} runs{full}; active: the default rule set, draft: "
        "bench/preview.py's draft (cheaper views, dearer cart adds, lower thresholds)."
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
