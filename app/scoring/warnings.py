"""Warnings about a valid rule set: things a marketer probably did not mean, said in the preview
and publish answers without refusing anything. Each names its rule (None: the rule set) with a
code and a message:

- `unknown_event`: a rule's event was not among the names this site sent recently, with the
  closest one seen (`difflib`); not checked on a site that sent nothing recently;
- `negative_weight`: a profile criterion whose match lowers the score: allowed, said out loud.
  (A behaviour rule's negative points are not warned about: taking points away for "Product
  Removed" or "Unsubscribed" is what they are for, as in the default rule set);
- `unreachable_threshold`: no lead can score `warm` (or `hot`): the most any lead can score
  with these rules is below it. Only said when it is proven: a behaviour rule without a cap
  that can count more than once is unbounded, and then nothing is said.
"""

import difflib
import math
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.tables import Event
from app.scoring.schemas import BehaviourRule, ContactsFit, MatchFit, RangeFit, RuleSet

SEEN_WINDOW = timedelta(days=30)
# Event names are read from the site's latest events, not from all of them: the primary key
# read backwards (ids grow as events are stored), stopping after this many of the site's,
# whatever its size; events has no index by site and name, and every stored event would pay
# for one. 13 ms at 200,000 leads and 1.87 million events (docs/performance.md).
SEEN_SAMPLE_EVENTS = 50_000

_events = cast(Table, Event.__table__)


async def seen_event_names(conn: AsyncConnection, site_id: uuid.UUID, now: datetime) -> set[str]:
    """The event names (a track event's name; "page", "screen", "identify"... for the others)
    among the site's latest `SEEN_SAMPLE_EVENTS` events, those of the last `SEEN_WINDOW`."""
    latest = (
        select(_events.c.type, _events.c.name, _events.c.timestamp)
        .where(_events.c.site_id == site_id)
        .order_by(_events.c.id.desc())
        .limit(SEEN_SAMPLE_EVENTS)
        .subquery()
    )
    rows = await conn.execute(
        select(latest.c.type, latest.c.name)
        .where(latest.c.timestamp >= now - SEEN_WINDOW)
        .distinct()
    )
    seen: set[str] = set()
    for event_type, name in rows:
        seen.add(name if event_type == "track" and name else event_type)
        if event_type == "screen":
            seen.add("page")  # the engine scores a screen as a page
    return seen


def _warning(rule: str | None, code: str, message: str) -> dict[str, Any]:
    return {"rule": rule, "code": code, "message": message}


def _event_warnings(rule_set: RuleSet, seen: set[str]) -> Iterable[dict[str, Any]]:
    used: list[tuple[str, str]] = [(r.id, r.event) for r in rule_set.behaviour]
    used += [(r.id, step.event) for r in rule_set.hard for step in r.steps]
    reported: set[tuple[str, str]] = set()
    for rule_id, event in used:
        if event == "*" or event in seen or (rule_id, event) in reported:
            continue
        reported.add((rule_id, event))
        close = difflib.get_close_matches(event, sorted(seen), n=1)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        yield _warning(
            rule_id,
            "unknown_event",
            f"No `{event}` event was seen on this site in the last 30 days: the rule will not"
            f" count until one arrives.{hint}",
        ) | {"suggestion": close[0] if close else None}


def _negative_warnings(rule_set: RuleSet) -> Iterable[dict[str, Any]]:
    for fit in rule_set.fit:
        if fit.weight < 0:
            yield _warning(
                fit.id,
                "negative_weight",
                f"`{fit.id}` has a negative weight ({fit.weight:g}): a match lowers the score.",
            )


def _behaviour_most(rule: BehaviourRule) -> float:
    """The most a behaviour rule can add to a score (inf: unbounded)."""
    if rule.points <= 0:
        return 0.0
    if rule.cap is not None:
        return rule.cap
    return rule.points if rule.frequency == "once_per_lead" else math.inf


def _fit_most(rule: MatchFit | RangeFit | ContactsFit) -> float:
    if rule.weight <= 0:
        return 0.0
    if isinstance(rule, RangeFit):
        return rule.weight * max(band.coefficient for band in rule.bands)
    if isinstance(rule, ContactsFit):  # channels add up, capped at 1
        return rule.weight * min(1.0, sum(o.coefficient for o in rule.options))
    return rule.weight * max(option.coefficient for option in rule.options)


def most_score(rule_set: RuleSet) -> float:
    """An upper bound of any lead's score with these rules (inf: none can be proven)."""
    total = sum(_behaviour_most(r) for r in rule_set.behaviour)
    total += sum(_fit_most(r) for r in rule_set.fit)
    return min(total, rule_set.max_score)


def _threshold_warnings(rule_set: RuleSet) -> Iterable[dict[str, Any]]:
    most = most_score(rule_set)
    if math.isinf(most):
        return
    thresholds = rule_set.thresholds
    if most < thresholds.warm:
        yield _warning(
            None,
            "unreachable_threshold",
            f"No lead can become warm: the most a lead can score is {most:g}, below warm"
            f" ({thresholds.warm:g}).",
        ) | {"threshold": "warm"}
    # A hard rule makes a lead hot whatever its score.
    if most < thresholds.hot and not rule_set.hard:
        yield _warning(
            None,
            "unreachable_threshold",
            f"No lead can become hot: the most a lead can score is {most:g}, below hot"
            f" ({thresholds.hot:g}), and no hard rule makes a lead hot.",
        ) | {"threshold": "hot"}


def rule_set_warnings(rule_set: RuleSet, seen_events: set[str]) -> list[dict[str, Any]]:
    """The warnings about `rule_set` on a site that sent `seen_events` recently."""
    found = list(_negative_warnings(rule_set))
    found += _threshold_warnings(rule_set)
    if seen_events:  # a site that sent nothing yet: nothing to compare with
        found += _event_warnings(rule_set, seen_events)
    return found


async def warnings_for(
    conn: AsyncConnection, site_id: uuid.UUID, rule_set: RuleSet, now: datetime
) -> list[dict[str, Any]]:
    return rule_set_warnings(rule_set, await seen_event_names(conn, site_id, now))
