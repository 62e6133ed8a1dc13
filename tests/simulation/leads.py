"""Each live lead against a from-scratch replay of its stored events (`replay.py`), and its
lead.hot messages against the hot spells the replay went through."""

import copy
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app.config import Settings
from app.domain.lead_rows import lead_row
from app.scoring import engine, scorer
from app.scoring.types import ONCE_PER_VISIT
from app.webhooks import outbox
from tests.simulation import replay
from tests.simulation.driver import Outcome
from tests.simulation.report import Report


async def check_leads(
    report: Report,
    conn: AsyncConnection,
    compiled: engine.CompiledRuleSet,
    live: list[dict[str, Any]],
    events: list[dict[str, Any]],
    messages: list[dict[str, Any]],
    outcome: Outcome,
    merged_into: Counter[Any],
    settings: Settings,
) -> None:
    """Leads whose events all came through one lane arrived in time order: the step-by-step
    replay must give them exactly. Others (a second device through another client) had late
    events: what does not depend on arrival order must still agree."""
    timeout = timedelta(minutes=settings.ingestion.visit_timeout_minutes)
    request_of: dict[str, tuple[int, int]] = {}
    for a in outcome.acknowledged():
        for message_id in a.request.message_ids:
            request_of.setdefault(message_id, (a.lane, a.index))
    by_lead: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["lead_id"] is not None:
            by_lead[e["lead_id"]].append(e)
    hot_messages: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for m in messages:
        if m["event_type"] == outbox.LEAD_HOT:
            hot_messages[m["lead_id"]].append(m["payload"]["data"])
    visit_rules = {r.id for r in compiled.behaviour.values() if r.frequency == ONCE_PER_VISIT}
    kinds: Counter[str] = Counter()
    for lead in live:
        rows = sorted(by_lead[lead["id"]], key=lambda e: (e["timestamp"], e["id"]))
        name = f"lead {lead['id']} ({rows[0]['anonymous_id'] if rows else 'no events'})"
        late = len({request_of.get(e["message_id"], (-1, 0))[0] for e in rows}) > 1
        kind = "late events" if late else "merged" if lead["id"] in merged_into else "in order"
        kinds[kind] += 1
        _no_repeated_episode(report, name, hot_messages[lead["id"]])
        # The re-scoring replay (publishing a rule set runs it) must give the same score.
        result = await scorer.rescore_from_history(
            conn, lead_row(copy.deepcopy(lead)), compiled, timeout, replay.evaluation_time(lead)
        )
        stored, rescored = (
            replay.rules_summary(lead["score_state"]),
            replay.rules_summary(result.state),
        )
        for rule_id in sorted(set(stored) | set(rescored)):
            if stored.get(rule_id) != rescored.get(rule_id):
                bucket = "late_event_visits" if late and rule_id in visit_rules else "score_replay"
                report.add(bucket, f"{name} ({kind}): rule {rule_id} stored {stored.get(rule_id)}"
                           f", re-scored {rescored.get(rule_id)}")  # fmt: skip
        if result.score != lead["score"]:
            bucket = "late_event_visits" if late else "score_replay"
            report.add(bucket, f"{name} ({kind}): score {lead['score']}, re-scored {result.score}")
        report.stats["rescore_changes_temperature"] += result.temperature != lead["temperature"]
        expected = replay.fold(compiled, lead["id"], lead["site_id"], rows, request_of, timeout)
        if kind != "in order":
            for diff in replay.differences(lead, expected.profile, replay.MERGED_FIELDS):
                report.add("profile_replay", f"{name} ({kind}): {diff}")
            continue
        fields = replay.PROFILE_FIELDS + replay.SCORE_FIELDS
        for diff in replay.differences(lead, expected.profile, fields):
            report.add("profile_replay", f"{name}: {diff}")
        _hot_episodes(report, name, lead, hot_messages[lead["id"]], expected, settings)
    report.stats["leads_by_arrival"] = dict(kinds)


def _hot_episodes(
    report: Report,
    name: str,
    lead: dict[str, Any],
    announced: list[dict[str, Any]],
    expected: replay.Folded,
    settings: Settings,
) -> None:
    """One lead.hot for each spell the lead was hot at an answer, with its contact_by."""
    spells = sorted(datetime.fromisoformat(d["became_hot_at"]) for d in announced)
    if spells != sorted(expected.hot_at_answers):
        report.add("hot_episodes", f"{name}: lead.hot for {spells}, "
                   f"hot spells {expected.hot_at_answers}")  # fmt: skip
    window = timedelta(minutes=settings.webhooks.first_contact_window_minutes)
    if lead["became_hot_at"] and lead["contact_by"] != lead["became_hot_at"] + window:
        report.add("hot_episodes", f"{name}: contact_by {lead['contact_by']}, hot since "
                   f"{lead['became_hot_at']}")  # fmt: skip


def _no_repeated_episode(report: Report, name: str, announced: list[dict[str, Any]]) -> None:
    for when, n in Counter(d["became_hot_at"] for d in announced).items():
        if n > 1:
            report.add("hot_episodes", f"{name}: {n} lead.hot messages for the spell at {when}")
