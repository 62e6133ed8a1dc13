"""Each lead against a from-scratch replay of its stored events, with the service's own pure
functions: the profile fold and the scoring engine step by step (what ingestion does), and
the re-scoring replay (what publishing a rule set does)."""

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app.domain import profile as lead_profile
from app.domain.events import IngestEvent
from app.domain.lead_rows import LeadRow
from app.scoring import engine, scorer

# What ingestion keeps in a lead that a replay of its events must give again.
PROFILE_FIELDS = (
    "first_seen_at", "last_seen_at", "visit_started_at", "visits", "page_views",
    "events_count", "session_seconds", "engaged_seconds", "orders", "revenue", "identified",
    "city", "country", "last_url", "contacts", "traits", "interests", "products_viewed", "cart",
    "subscribed", "user_id",
)  # fmt: skip
# A merged lead's profile is the merge of two (visits and time on site are summed per device,
# see `merge_profiles`): what the combined history must still give.
MERGED_FIELDS = (
    "first_seen_at", "last_seen_at", "page_views", "events_count", "orders", "interests",
    "contacts", "identified", "user_id",
)  # fmt: skip
SCORE_FIELDS = ("score", "temperature", "became_hot_at", "score_state")


def ingest_event(row: Mapping[str, Any]) -> IngestEvent:
    """A stored event as ingestion saw it."""
    return IngestEvent(
        message_id=row["message_id"],
        type=row["type"],
        name=row["name"],
        anonymous_id=row["anonymous_id"],
        user_id=row["user_id"],
        previous_id=row["previous_id"],
        timestamp=row["timestamp"],
        original_timestamp=row["original_timestamp"],
        sent_at=row["sent_at"],
        received_at=row["received_at"],
        properties=row["properties"] or {},
        traits=row["traits"] or {},
        context=row["context"] or {},
        is_bot=row["is_bot"],
        lead_id=row["lead_id"],
    )


@dataclass
class Folded:
    """A lead rebuilt event by event, and the hot spells ingestion would have announced:
    `hot_at_answers` has `became_hot_at` each time the lead was hot at the end of a request
    without being hot at the end of its previous one."""

    profile: LeadRow
    hot_at_answers: list[datetime] = field(default_factory=list)


def fold(
    compiled: engine.CompiledRuleSet,
    lead_id: uuid.UUID,
    site_id: uuid.UUID,
    rows: Sequence[Mapping[str, Any]],
    request_of: Mapping[str, tuple[int, int]],
    visit_timeout: timedelta,
) -> Folded:
    """Ingestion's work for one lead, replayed: the profile fold, then the engine's `advance`
    with the facts of that moment, for each event in time order (each lead's events were sent
    in time order, and a group never holds two requests of one lane)."""
    profile = lead_profile.new_profile(lead_id, site_id, datetime.now(UTC))
    profile["score_state"] = engine.empty_state()
    out = Folded(profile)
    hot_before = False
    for i, row in enumerate(rows):
        event = ingest_event(row)
        lead_profile.apply_event(profile, event, visit_timeout)
        state = profile["score_state"]
        assert state is not None  # set before the loop, kept by record_state
        score = engine.advance(
            compiled,
            state,
            scorer.scoring_event(event, profile["visits"]),
            scorer.facts_from_profile(profile),
        )
        scorer.record_state(profile, state, score, compiled.version, profile["created_at"])
        last_of_request = i + 1 == len(rows) or request_of.get(
            rows[i + 1]["message_id"]
        ) != request_of.get(row["message_id"])
        if last_of_request:
            hot = profile["temperature"] == "hot"
            if hot and not hot_before:
                became_hot_at = profile["became_hot_at"]
                assert became_hot_at is not None  # a hot lead has its moment
                out.hot_at_answers.append(became_hot_at)
            hot_before = hot
    return out


def differences(lead: Mapping[str, Any], expected: Mapping[str, Any], fields: tuple) -> list[str]:
    out = []
    for name in fields:
        got, want = lead[name], expected[name]
        if isinstance(want, float) and isinstance(got, float | int):
            if abs(got - want) > 1e-6:
                out.append(f"{name}: stored {got!r}, replay {want!r}")
        elif got != want:
            out.append(f"{name}: stored {_short(got)}, replay {_short(want)}")
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 300 else text[:300] + "..."


def rules_summary(state: Mapping[str, Any] | None) -> dict[str, tuple[int, float, float]]:
    """Per behaviour rule: (events counted, points before decay, decayed total at its time)."""
    rules = (state or {}).get("rules") or {}
    return {
        rule_id: (entry["n"], round(entry["raw"], 6), round(entry["v"], 6))
        for rule_id, entry in rules.items()
    }


def evaluation_time(lead: Mapping[str, Any]) -> datetime | None:
    state = lead["score_state"] or {}
    return datetime.fromtimestamp(state["at"], UTC) if state.get("at") else None
