"""The scorer: each site's active compiled rule set (`RuleSetCache`), each lead's score kept
current at ingestion (`LeadScorer`), and a lead scored from scratch over its events
(`replay_events`, `rescore_from_history`). The arithmetic is all in the pure
`app.scoring.engine`; this module feeds it events and facts and writes results into leads."""

import copy
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.domain import profile as lead_profile
from app.domain.events import IngestEvent, page_url, visit_number
from app.domain.lead_rows import LeadRow
from app.domain.tables import Event
from app.scoring import engine
from app.scoring.defaults import DEFAULT_RULE_SET
from app.scoring.models import RuleSetVersion
from app.scoring.schemas import RuleSet, parse_rule_set


def scoring_kind(event_type: str, name: str | None) -> str:
    """The event kind rules name: "page" for page and screen calls, the event name for track."""
    if event_type == "track":
        return name or ""
    if event_type == "screen":
        return "page"
    return event_type


def facts_from_profile(profile: Mapping[str, Any]) -> engine.LeadFacts:
    return engine.LeadFacts(
        city=profile.get("city"),
        country=profile.get("country"),
        traits=profile.get("traits") or {},
        contacts=profile.get("contacts") or {},
        visits=profile.get("visits") or 0,
        page_views=profile.get("page_views") or 0,
        time_on_site_seconds=lead_profile.time_on_site(profile),
        orders=profile.get("orders") or 0,
        last_seen_at=profile.get("last_seen_at"),
        interests=profile.get("interests") or {},
    )


def scoring_event(event: IngestEvent, visit: int) -> engine.ScoringEvent:
    return engine.ScoringEvent(
        message_id=event.message_id,
        kind=scoring_kind(event.type, event.name),
        properties=event.properties,
        at=event.timestamp,
        visit=visit,
        url=event.url,
    )


def stored_scoring_events(
    rows: Iterable[Any], visit_timeout: timedelta
) -> list[engine.ScoringEvent]:
    """Stored events (message_id, type, name, properties, context, timestamp; in time order)
    as scoring events, with visit numbers worked out as ingestion does.

    Runs once per stored event in preview and re-scoring, so `visit_number`, `scoring_kind`
    and `page_url` are inlined (the same tests on the same values; the reference is kept as
    `_stored_scoring_events_reference`)."""
    out: list[engine.ScoringEvent] = []
    append = out.append
    make = engine.ScoringEvent
    visit, last = 0, None
    for message_id, event_type, name, properties, context, at in rows:
        if last is None or at - last > visit_timeout:
            visit += 1
        last = at
        if event_type == "track":
            kind = name or ""
        elif event_type == "screen":
            kind = "page"
        else:
            kind = event_type
        page = context.get("page") if context else None
        url = page.get("url") if isinstance(page, dict) else None
        if not url:
            url = properties.get("url") if properties else None
        append(
            make(
                message_id, kind, properties or {}, at, visit, url if isinstance(url, str) else None
            )
        )
    return out


def _stored_scoring_events_reference(
    rows: Iterable[Any], visit_timeout: timedelta
) -> list[engine.ScoringEvent]:
    """`stored_scoring_events` as first written, on the shared helpers (`visit_number`,
    `scoring_kind`, `page_url`): the oracle its inlined loop is tested against
    (tests/scoring/test_stored_events.py)."""
    out = []
    visit, last = 0, None
    for message_id, event_type, name, properties, context, at in rows:
        visit, last = visit_number(visit, last, at, visit_timeout), at
        out.append(
            engine.ScoringEvent(
                message_id=message_id,
                kind=scoring_kind(event_type, name),
                properties=properties or {},
                at=at,
                visit=visit,
                url=page_url(context, properties),
            )
        )
    return out


def record_result(
    profile: LeadRow,
    result: engine.ScoreResult,
    now: datetime,
    compiled: engine.CompiledRuleSet,
) -> None:
    """Write a score result (of `compiled` at `now`) into the lead's columns, with when the
    lead next needs the refresher's look."""
    record_state(profile, result.state, result.score, result.rule_set_version, now)
    record_next_check(profile, compiled, now)


def record_next_check(profile: LeadRow, compiled: engine.CompiledRuleSet, now: datetime) -> None:
    """When the lead, as scored in its columns, next shows differently with no new event."""
    state = profile["score_state"]
    profile["next_check_at"] = (
        engine.next_change_at(compiled, state, facts_from_profile(profile), now, profile["score"])
        if state
        else None
    )


def record_state(
    profile: LeadRow, state: dict[str, Any], score: float, version: int, now: datetime
) -> None:
    """Write a scoring state and its score into the lead's columns (temperature and the time
    the lead became hot are the state's)."""
    profile["score_state"] = state
    profile["score"] = score
    profile["temperature"] = state["temperature"]
    profile["rule_set_version"] = version
    profile["scored_at"] = now
    if state["hot_since"] is not None:
        profile["became_hot_at"] = datetime.fromtimestamp(state["hot_since"], UTC)


def rule_set_for_version(definition: Mapping[str, Any], version: int) -> RuleSet:
    return parse_rule_set({**definition, "version": version})


def default_definition() -> dict[str, Any]:
    """A fresh copy of the built-in rule set (deep: callers may edit it)."""
    return {k: copy.deepcopy(v) for k, v in DEFAULT_RULE_SET.items() if k != "version"}


async def publish_default(session: AsyncSession, site_id: uuid.UUID) -> None:
    """Every site starts with the built-in rule set as its version 1."""
    session.add(RuleSetVersion(site_id=site_id, version=1, definition=default_definition()))
    await session.flush()


class RuleSetCache:
    """Each site's active compiled rule set, re-read at most every `ttl` seconds, so that a
    version published through any replica is in use everywhere within that time."""

    def __init__(self, ttl_seconds: float) -> None:
        self._ttl = ttl_seconds
        self._entries: dict[uuid.UUID, tuple[float, engine.CompiledRuleSet]] = {}
        self._default: engine.CompiledRuleSet | None = None

    def __reduce__(self) -> tuple[type["RuleSetCache"], tuple[float]]:
        # Sent to a job's processes (inside the webhook consumer) empty: compiled rule sets
        # need not pickle, and each process reads its own.
        return (RuleSetCache, (self._ttl,))

    def invalidate(self, site_id: uuid.UUID | None = None) -> None:
        if site_id is None:
            self._entries.clear()
        else:
            self._entries.pop(site_id, None)

    async def get_many(
        self, conn: AsyncConnection, site_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, engine.CompiledRuleSet]:
        now = time.monotonic()
        found: dict[uuid.UUID, engine.CompiledRuleSet] = {}
        stale = []
        for site_id in set(site_ids):
            entry = self._entries.get(site_id)
            if entry is not None and entry[0] > now:
                found[site_id] = entry[1]
            else:
                stale.append(site_id)
        if stale:
            t = RuleSetVersion.__table__
            latest = (
                select(t.c.site_id, func.max(t.c.version).label("version"))
                .where(t.c.site_id.in_(stale))
                .group_by(t.c.site_id)
                .subquery()
            )
            rows = await conn.execute(
                select(t.c.site_id, t.c.version, t.c.definition).join(
                    latest, (latest.c.site_id == t.c.site_id) & (latest.c.version == t.c.version)
                )
            )
            for site_id, version, definition in rows:
                entry = self._entries.get(site_id)
                if entry is not None and entry[1].version == version:
                    compiled = entry[1]
                else:
                    compiled = engine.compile_rule_set(rule_set_for_version(definition, version))
                found[site_id] = compiled
                self._entries[site_id] = (now + self._ttl, compiled)
            for site_id in stale:
                if site_id not in found:  # a site with no version (made outside the service)
                    found[site_id] = self._default_compiled()
        return found

    def _default_compiled(self) -> engine.CompiledRuleSet:
        if self._default is None:
            self._default = engine.compile_rule_set(rule_set_for_version(default_definition(), 1))
        return self._default


class LeadScorer:
    """Keeps leads' scores current inside ingestion's group transaction."""

    def __init__(self, cache: RuleSetCache, visit_timeout: timedelta) -> None:
        self._cache = cache
        self._visit_timeout = visit_timeout
        self._compiled: dict[uuid.UUID, engine.CompiledRuleSet] = {}

    async def prepare(self, conn: AsyncConnection, site_ids: Iterable[uuid.UUID]) -> None:
        self._compiled = await self._cache.get_many(conn, site_ids)

    async def rescore_stale(
        self, conn: AsyncConnection, profiles: Sequence[LeadRow], force: set[uuid.UUID]
    ) -> None:
        """Replay the stored history of leads scored by an older rule-set version (or merged,
        in `force`), so that a lead's score never mixes versions."""
        ahead = {
            p["site_id"]
            for p in profiles
            if (p["rule_set_version"] or 0) > self._compiled[p["site_id"]].version
        }
        if ahead:  # another replica published a version our cache has not seen yet
            for site_id in ahead:
                self._cache.invalidate(site_id)
            self._compiled.update(await self._cache.get_many(conn, ahead))
        for profile in profiles:
            compiled = self._compiled[profile["site_id"]]
            scored_with = profile["rule_set_version"]
            # Only forward: a replica whose cache still holds the previous version (for up to
            # rule_set_cache_seconds) must not move a lead a re-scoring job already advanced.
            if profile["id"] in force or (
                scored_with is not None and scored_with < compiled.version
            ):
                await rescore_from_history(conn, profile, compiled, self._visit_timeout)

    def apply(self, profile: LeadRow, event: IngestEvent, now: datetime) -> None:
        """Score one event into the lead, in place (the group owns its profiles: they were
        read under lock for this transaction, or are new)."""
        compiled = self._compiled[profile["site_id"]]
        state = profile["score_state"]
        if not state:  # a lead's JSON column may start as {} or null
            state = profile["score_state"] = engine.empty_state()
        score = engine.advance(
            compiled, state, scoring_event(event, profile["visits"]), facts_from_profile(profile)
        )
        record_state(profile, state, score, compiled.version, now)

    def finish(self, profiles: Iterable[LeadRow], now: datetime) -> None:
        """After a group's events are applied: when each lead next needs a look (once per
        lead and group, not per event)."""
        for profile in profiles:
            compiled = self._compiled.get(profile["site_id"])
            if compiled is not None and profile["rule_set_version"] == compiled.version:
                record_next_check(profile, compiled, now)

    def replay(self, profile: LeadRow, events: Sequence[IngestEvent]) -> None:
        """Score the lead from scratch over `events` (all of its events, in time order) as
        re-scoring would: for a lead rebuilt because an event arrived late."""
        rows = [
            (e.message_id, e.type, e.name, e.properties, e.context, e.timestamp) for e in events
        ]
        scored = stored_scoring_events(rows, self._visit_timeout)
        replay_events(profile, self._compiled[profile["site_id"]], scored)


def replay_events(
    profile: LeadRow,
    compiled: engine.CompiledRuleSet,
    events: list[engine.ScoringEvent],
    now: datetime | None = None,
) -> engine.ScoreResult:
    """Score a lead from scratch over `events` (at `now`, or at its last event); the result
    has no breakdown."""
    at = now or (events[-1].at if events else profile["last_seen_at"]) or profile["created_at"]
    # No breakdown: re-scoring's hot path records scores and states only.
    result = engine.replay(compiled, events, facts_from_profile(profile), at, explain=False)
    record_result(profile, result, at, compiled)
    return result


async def rescore_from_history(
    conn: AsyncConnection,
    profile: LeadRow,
    compiled: engine.CompiledRuleSet,
    visit_timeout: timedelta,
    now: datetime | None = None,
) -> engine.ScoreResult:
    """Score a lead from scratch over its stored events with `compiled` (at `now`, or at its
    last event)."""
    t = Event.__table__
    rows = await conn.execute(
        select(t.c.message_id, t.c.type, t.c.name, t.c.properties, t.c.context, t.c.timestamp)
        .where(t.c.lead_id == profile["id"], t.c.is_bot.is_(False))
        .order_by(t.c.timestamp, t.c.id)
    )
    return replay_events(profile, compiled, stored_scoring_events(rows, visit_timeout), now)
