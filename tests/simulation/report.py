"""The invariants' outcome: violations by invariant (none: it held), and counts."""

from dataclasses import dataclass, field
from typing import Any

INVARIANTS = (
    "no_5xx",
    "stored_once",
    "crawlers_unattached",
    "one_lead_per_person",
    "profile_replay",
    "score_replay",
    "hot_episodes",
    "cart_timers",
    "merged_cart_timers",
    "late_event_visits",  # known defects: KNOWN_DEFECTS
)
KNOWN_DEFECTS = {
    "late_event_visits": "an event that arrives after a later one of its lead (a second "
    "device's client) is scored with the lead's current visit number, while re-scoring numbers "
    "visits by time, so once-per-visit rules (return-visit) and the score differ",
}


@dataclass
class Report:
    violations: dict[str, list[str]] = field(default_factory=lambda: {n: [] for n in INVARIANTS})
    stats: dict[str, Any] = field(default_factory=dict)

    def add(self, invariant: str, message: str) -> None:
        self.violations[invariant].append(message)

    def summary(self) -> dict[str, str]:
        return {
            name: "ok" if not found else f"{len(found)} violations, e.g. {found[0]}"
            for name, found in self.violations.items()
        }
