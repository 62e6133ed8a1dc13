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
  that can count more than once is unbounded, and then nothing is said;
- `unknown_value`: a `city` or `country` option of a profile criterion that none of the site's
  recently seen leads has, with the closest one; not checked when none of them has any.
"""

import difflib
import math
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.tables import Event, Lead
from app.scoring.schemas import BehaviourRule, ContactsFit, MatchFit, RangeFit, RuleSet

SEEN_WINDOW = timedelta(days=30)
# Event names are read from the site's latest events, not from all of them: the primary key
# read backwards (ids grow as events are stored), stopping after this many of the site's,
# whatever its size; events has no index by site and name, and every stored event would pay
# for one. 13 ms at 200,000 leads and 1.87 million events (docs/performance.md).
SEEN_SAMPLE_EVENTS = 50_000
# Cities and countries from the site's most recently seen leads, by ix_leads_site_id_last_seen_at.
SEEN_SAMPLE_LEADS = 5_000
PROFILE_FIELDS = ("city", "country")

_events = cast(Table, Event.__table__)
_leads = cast(Table, Lead.__table__)


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


async def seen_profile_values(
    conn: AsyncConnection, site_id: uuid.UUID, now: datetime
) -> dict[str, set[str]]:
    """The cities and countries of the site's latest `SEEN_SAMPLE_LEADS` leads seen in the
    last `SEEN_WINDOW`."""
    latest = (
        select(_leads.c.city, _leads.c.country)
        .where(
            _leads.c.site_id == site_id,
            _leads.c.merged_into_id.is_(None),
            _leads.c.last_seen_at >= now - SEEN_WINDOW,
        )
        .order_by(_leads.c.last_seen_at.desc().nulls_last(), _leads.c.id.desc())
        .limit(SEEN_SAMPLE_LEADS)
    )
    seen: dict[str, set[str]] = {name: set() for name in PROFILE_FIELDS}
    for city, country in await conn.execute(latest):
        for name, value in (("city", city), ("country", country)):
            if value:
                seen[name].add(value)
    return seen


def _value_warnings(rule_set: RuleSet, seen: dict[str, set[str]]) -> Iterable[dict[str, Any]]:
    for fit in rule_set.fit:
        if not isinstance(fit, MatchFit) or not seen.get(fit.field):
            continue
        # Options match case-insensitively: so does this check, and the suggestion is the
        # value as the leads have it.
        by_folded = {value.casefold(): value for value in seen[fit.field]}
        for option in fit.options:
            for value in option.values:
                if value.casefold() in by_folded:
                    continue
                close = difflib.get_close_matches(value.casefold(), sorted(by_folded), n=1)
                suggestion = by_folded[close[0]] if close else None
                hint = f" Did you mean `{suggestion}`?" if suggestion else ""
                yield _warning(
                    fit.id,
                    "unknown_value",
                    f"No lead seen on this site in the last 30 days has {fit.field}"
                    f" `{value}`.{hint}",
                ) | {"suggestion": suggestion}


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


def rule_set_warnings(
    rule_set: RuleSet, seen_events: set[str], seen_values: dict[str, set[str]] | None = None
) -> list[dict[str, Any]]:
    """The warnings about `rule_set` on a site that sent `seen_events` recently, and whose
    recent leads have `seen_values` (by profile field)."""
    found = list(_negative_warnings(rule_set))
    found += _threshold_warnings(rule_set)
    if seen_events:  # a site that sent nothing yet: nothing to compare with
        found += _event_warnings(rule_set, seen_events)
    found += _value_warnings(rule_set, seen_values or {})
    return found


async def warnings_for(
    conn: AsyncConnection, site_id: uuid.UUID, rule_set: RuleSet, now: datetime
) -> list[dict[str, Any]]:
    needs_values = any(
        isinstance(fit, MatchFit) and fit.field in PROFILE_FIELDS for fit in rule_set.fit
    )
    return rule_set_warnings(
        rule_set,
        await seen_event_names(conn, site_id, now),
        await seen_profile_values(conn, site_id, now) if needs_values else None,
    )
