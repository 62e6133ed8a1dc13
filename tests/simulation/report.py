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
    "late_event_visits",
    "merged_cart_timers",
)
# Invariants known to fail, each with the defect it names: checked and reported as an xfail.
KNOWN_DEFECTS: dict[str, str] = {}


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
