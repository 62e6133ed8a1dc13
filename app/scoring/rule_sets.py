"""A site's rule sets, as the rule-set API sees them: versions, publishing (with the
re-scoring job it starts) and previews of a draft.

Publishing adds version max + 1 (the site row is locked, so concurrent publishes queue up)
and a re-scoring job, which `app.scoring.rescoring` runs (or the request, for a small site).
Preview replays the stored events with a draft, compares with the active set and writes
nothing.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app import wakeups
from app.domain.tables import Lead
from app.errors import AppError
from app.scoring import engine
from app.scoring.histories import scoring_histories
from app.scoring.models import RescoreJob, RuleSetVersion
from app.scoring.schemas import RuleSet, RuleSetInvalid, parse_rule_set
from app.scoring.scorer import (
    default_definition,
    facts_from_profile,
    rule_set_for_version,
)
from app.sites.models import Site

RESCORE_JOBS = "scoring.rescore_jobs"  # the re-scoring loop's wake-up (app.wakeups)

READ_ONLY_FIELDS = ("version", "created_at", "active")  # answered by GET; PUT ignores them
ACTIVE_JOB_STATUSES = ("pending", "running")
PREVIEW_LEADS_PER_QUERY = 250  # leads whose events are fetched in one query


class InvalidRuleSet(AppError):
    status_code = 422
    code = "invalid_rule_set"


def validate_draft(document: Mapping[str, Any], version: int) -> tuple[dict[str, Any], RuleSet]:
    """The definition to store (the document without read-only fields) and the parsed rule
    set; `InvalidRuleSet` names every bad rule and field."""
    definition = {k: v for k, v in document.items() if k not in READ_ONLY_FIELDS}
    try:
        return definition, parse_rule_set({**definition, "version": version})
    except RuleSetInvalid as exc:
        count = len(exc.errors)
        raise InvalidRuleSet(
            f"The rule set is not valid ({count} error{'s' if count != 1 else ''}).",
            details=exc.errors,
        ) from None


# --- versions ---------------------------------------------------------------------------------


async def latest_version_number(session: AsyncSession, site_id: uuid.UUID) -> int:
    found = await session.scalar(
        select(func.max(RuleSetVersion.version)).where(RuleSetVersion.site_id == site_id)
    )
    return int(found or 0)


async def get_version(
    session: AsyncSession, site_id: uuid.UUID, version: int | None = None
) -> RuleSetVersion | None:
    """One version of the site's rule set; None: the active one (the highest)."""
    query = select(RuleSetVersion).where(RuleSetVersion.site_id == site_id)
    if version is None:
        query = query.order_by(RuleSetVersion.version.desc()).limit(1)
    else:
        query = query.where(RuleSetVersion.version == version)
    return await session.scalar(query)


async def list_versions(session: AsyncSession, site_id: uuid.UUID) -> list[RuleSetVersion]:
    """Every version, newest first."""
    rows = await session.scalars(
        select(RuleSetVersion)
        .where(RuleSetVersion.site_id == site_id)
        .order_by(RuleSetVersion.version.desc())
    )
    return list(rows)


@dataclass(frozen=True, slots=True)
class Published:
    version: RuleSetVersion
    job: RescoreJob
    synchronous: bool  # re-score before answering (a small site)
    rule_set: RuleSet  # as validated, for the publish answer's warnings


async def publish(
    session: AsyncSession,
    site_id: uuid.UUID,
    document: Mapping[str, Any],
    *,
    now: datetime,
    sync_max_leads: int,
    lease: timedelta,
    note: str | None = None,
    author: str | None = None,
) -> Published:
    """Validate and add version max + 1, supersede older re-scoring jobs and enqueue one.

    A small site's job is created already claimed (running, leased to the caller), who runs
    it with `run_job` after committing; a large site's job waits for a worker."""
    # Publishes of one site queue up: on PostgreSQL on the site's row (NO KEY: inserts that
    # reference it still pass); on SQLite the superseding UPDATE, a write, comes before reading
    # the highest version, so the transaction holds the database's one write lock by then.
    await session.execute(select(Site.id).where(Site.id == site_id).with_for_update(key_share=True))
    await session.execute(
        update(RescoreJob)
        .where(RescoreJob.site_id == site_id, RescoreJob.status.in_(ACTIVE_JOB_STATUSES))
        .values(
            status="superseded",
            finished_at=now,
            lease_until=None,
            error="superseded by a newer rule-set version",
        )
    )
    number = await latest_version_number(session, site_id) + 1
    definition, rule_set = validate_draft(document, number)
    version = RuleSetVersion(
        site_id=site_id,
        version=number,
        definition=definition,
        created_at=now,
        note=note,
        author=author,
    )
    session.add(version)
    leads = int(
        await session.scalar(
            select(func.count())
            .select_from(Lead)
            .where(Lead.site_id == site_id, Lead.merged_into_id.is_(None))
        )
        or 0
    )
    synchronous = leads <= sync_max_leads
    job = RescoreJob(site_id=site_id, rule_set_version=number, total=leads, created_at=now)
    if synchronous:
        job.status, job.started_at, job.lease_until = "running", now, now + lease
    session.add(job)
    await session.flush()
    if not synchronous:  # an idle worker starts it at once (app.wakeups)
        await wakeups.notify(await session.connection(), RESCORE_JOBS, others=True)
    return Published(version=version, job=job, synchronous=synchronous, rule_set=rule_set)


async def get_job(
    session: AsyncSession, site_id: uuid.UUID, job_id: uuid.UUID
) -> RescoreJob | None:
    return await session.scalar(
        select(RescoreJob).where(RescoreJob.id == job_id, RescoreJob.site_id == site_id)
    )


def job_view(job: RescoreJob) -> dict[str, Any]:
    percent = 100.0 if not job.total else round(100.0 * job.processed / job.total, 1)
    return {
        "id": str(job.id),
        "rule_set_version": job.rule_set_version,
        "status": job.status,
        "processed": job.processed,
        "total": job.total,
        "percent": percent,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "error": job.error,
        "url": f"/v1/rules/jobs/{job.id}",
    }


# --- preview ---------------------------------------------------------------------------------

_leads = cast(Table, Lead.__table__)
_PREVIEW_COLUMNS = [
    _leads.c[name]
    for name in (
        "id", "created_at", "city", "country", "traits", "contacts", "visits", "page_views",
        "engaged_seconds", "session_seconds", "orders", "last_seen_at", "interests",
        "rule_set_version", "score_state",
    )
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class PreviewSets:
    """The two rule sets a preview compares, compiled: the draft and the site's active one."""

    active_version: int
    active: engine.CompiledRuleSet
    draft: engine.CompiledRuleSet


Key = tuple[float, str]  # a listed change's place: the larger score move first, then lead id
MOVES = tuple(
    f"{a}_to_{b}" for a in ("cold", "warm", "hot") for b in ("cold", "warm", "hot") if a != b
)
RULES_PER_CHANGE = 5  # the rules listed per changed lead: the largest point differences


@dataclass(slots=True)
class PreviewTally:
    """A preview's counts over the leads seen so far; `listed` keeps the `limit` changed leads
    whose scores move the most (ties: by lead id), so that the answer stays small whatever the
    site's size. Tallies of parts of a site merge (`extend`) into the tally of the whole, so
    that parts can be previewed apart (in other processes), giving the same answer."""

    limit: int
    leads: int = 0
    events: int = 0
    changed: int = 0
    active: dict[str, int] = field(default_factory=lambda: _zero())
    draft: dict[str, int] = field(default_factory=lambda: _zero())
    moves: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MOVES, 0))
    listed: list[tuple[Key, dict[str, Any]]] = field(default_factory=list)
    # Once the list has been full: the key a change must come before to be listed (the
    # breakdowns behind a change's rules are only computed for those).
    bar: Key | None = None

    def wants(self, key: Key) -> bool:
        return self.limit > 0 and (self.bar is None or key < self.bar)

    def add(self, key: Key, change: dict[str, Any]) -> None:
        self.listed.append((key, change))
        if len(self.listed) >= 2 * self.limit:
            self._prune()

    def _prune(self) -> None:
        self.listed.sort(key=lambda item: item[0])
        del self.listed[self.limit :]
        if self.listed and len(self.listed) == self.limit:
            last = self.listed[-1][0]
            self.bar = last if self.bar is None else min(self.bar, last)

    def extend(self, later: "PreviewTally") -> None:
        """Add the tally of other leads (another range of the same site)."""
        self.leads += later.leads
        self.events += later.events
        self.changed += later.changed
        for temperature in ("cold", "warm", "hot"):
            self.active[temperature] += later.active[temperature]
            self.draft[temperature] += later.draft[temperature]
        for move in MOVES:
            self.moves[move] += later.moves[move]
        self.listed.extend(later.listed)
        self._prune()

    def answer(self, active_version: int, evaluated_at: datetime) -> dict[str, Any]:
        self._prune()
        return {
            "active_version": active_version,
            "evaluated_at": evaluated_at,
            "leads": self.leads,
            "events": self.events,
            "active": dict(self.active),
            "draft": dict(self.draft),
            "moves": dict(self.moves),
            "changed": self.changed,
            "changes": [change for _, change in self.listed],
            "changes_truncated": self.changed > len(self.listed),
        }


def lead_label(profile: Mapping[str, Any]) -> str:
    """Who a lead is, for people: the name or email it left, else its city, else its id's
    first 8 characters."""
    traits, contacts = profile.get("traits") or {}, profile.get("contacts") or {}
    for value in (traits.get("name"), contacts.get("name"), contacts.get("email"),
                  traits.get("email"), profile.get("city")):  # fmt: skip
        if isinstance(value, str) and value.strip():
            return value.strip()
    return str(profile["id"])[:8]


def rule_deltas(
    before: list[engine.BreakdownItem], after: list[engine.BreakdownItem]
) -> list[dict[str, Any]]:
    """The rules that make the difference between two breakdowns of a lead: each rule's points
    under both (a hard rule: whether it holds the lead hot), the largest difference first; a
    hard rule that holds under one set only comes first of all."""
    lines: dict[str, dict[str, Any]] = {}
    for side, items in (("active", before), ("draft", after)):
        for item in items:
            line = lines.setdefault(
                item.rule_id,
                {"rule_id": item.rule_id, "label": item.label, "kind": item.kind,
                 "points_active": 0.0, "points_draft": 0.0,
                 "hot_active": False, "hot_draft": False},
            )  # fmt: skip
            line["label"], line["kind"] = item.label, item.kind  # the draft's, if both
            line[f"points_{side}"] = item.points
            line[f"hot_{side}"] = item.kind == "hard"
    out = []
    for line in lines.values():
        line["delta"] = round(line["points_draft"] - line["points_active"], 2)
        if line["delta"] or line["hot_active"] != line["hot_draft"]:
            out.append(line)
    out.sort(key=lambda d: (d["hot_active"] == d["hot_draft"], -abs(d["delta"]), d["rule_id"]))
    return out[:RULES_PER_CHANGE]


def compile_preview_sets(
    draft_definition: Mapping[str, Any],
    active_version: int,
    active_definition: Mapping[str, Any] | None,
) -> PreviewSets:
    """Compile the draft (numbered active + 1; `InvalidRuleSet` if it is not valid) and the
    active set (the built-in default, as version 1, for a site without any)."""
    _, draft_set = validate_draft(draft_definition, active_version + 1)
    active = (
        rule_set_for_version(active_definition, active_version)
        if active_definition is not None
        else rule_set_for_version(default_definition(), 1)  # a site made outside the service
    )
    return PreviewSets(
        active_version=active_version,
        active=engine.compile_rule_set(active),
        draft=engine.compile_rule_set(draft_set),
    )


async def active_definition(
    conn: AsyncConnection, site_id: uuid.UUID
) -> tuple[int, dict[str, Any] | None]:
    """The site's active version number (0: none) and its definition."""
    row = (
        await conn.execute(
            select(RuleSetVersion.version, RuleSetVersion.definition)
            .where(RuleSetVersion.site_id == site_id)
            .order_by(RuleSetVersion.version.desc())
            .limit(1)
        )
    ).first()
    return (row.version, row.definition) if row else (0, None)


def live_leads(site_id: uuid.UUID) -> Any:
    """The condition of the site's leads a preview counts (merged leads are not leads)."""
    return (_leads.c.site_id == site_id) & _leads.c.merged_into_id.is_(None)


async def preview_profiles(
    conn: AsyncConnection,
    site_id: uuid.UUID,
    *,
    after: uuid.UUID | None,
    upto: uuid.UUID | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The site's next `limit` live leads with ids in (after, upto] (None: unbounded), in id
    order, as dicts of `_PREVIEW_COLUMNS`. On PostgreSQL through asyncpg directly, as
    `scoring_histories`: a preview reads every lead of a site, and SQLAlchemy's row processing
    cost as much as replaying the lead's draft."""
    if conn.dialect.name != "postgresql":
        query = select(*_PREVIEW_COLUMNS).where(live_leads(site_id))
        if after is not None:
            query = query.where(_leads.c.id > after)
        if upto is not None:
            query = query.where(_leads.c.id <= upto)
        rows = await conn.execute(query.order_by(_leads.c.id).limit(limit))
        return [dict(row) for row in rows.mappings()]
    params: list[Any] = [site_id]
    where = "site_id = $1 AND merged_into_id IS NULL"
    for bound, operator in ((after, ">"), (upto, "<=")):
        if bound is not None:
            params.append(bound)
            where += f" AND id {operator} ${len(params)}"
    columns = ", ".join(column.name for column in _PREVIEW_COLUMNS)
    sql = f"SELECT {columns} FROM leads WHERE {where} ORDER BY id LIMIT {int(limit)}"
    raw = await conn.get_raw_connection()
    records = await raw.driver_connection.fetch(sql, *params)  # type: ignore[union-attr]
    profiles = []
    for record in records:
        profile = dict(record)
        profile["id"] = uuid.UUID(bytes=record["id"].bytes)  # asyncpg's own UUID type otherwise
        profiles.append(profile)
    return profiles


async def preview_batch(
    conn: AsyncConnection,
    site_id: uuid.UUID,
    sets: PreviewSets,
    tally: PreviewTally,
    *,
    after: uuid.UUID | None,
    upto: uuid.UUID | None,
    batch_leads: int,
    now: datetime,
    visit_timeout: timedelta,
) -> tuple[uuid.UUID | None, int]:
    """Preview the next `batch_leads` leads with ids in (after, upto] (None: unbounded) into
    `tally`; answer the last lead's id (None: none were left) and how many were previewed.

    The leads' events are read in one query ordered by (lead, time) and each lead's are
    replayed with the draft; under the active set a lead is its stored state evaluated at
    `now` (what replaying would give: ingestion applied the same events with the same engine),
    or, scored by another version, a replay too."""
    profiles = await preview_profiles(conn, site_id, after=after, upto=upto, limit=batch_leads)
    if not profiles:
        return None, 0
    ids = [p["id"] for p in profiles]
    history = await scoring_histories(conn, site_id, ids, visit_timeout)
    active, draft = sets.active, sets.draft
    for profile in profiles:
        scoring_events = history.get(profile["id"], [])
        facts = facts_from_profile(profile)
        state = profile["score_state"]
        if state and profile["rule_set_version"] == active.version:
            # The state was read for this alone: evaluated without a copy of its rules.
            before = engine.evaluate(active, state, facts, now, explain=False, shared=True)
        else:
            before = engine.replay(active, scoring_events, facts, now, explain=False)
        # Only temperatures and scores are tallied: no breakdowns (a third of a short replay).
        after_draft = engine.replay(draft, scoring_events, facts, now, explain=False)
        tally.leads += 1
        tally.events += len(scoring_events)
        tally.active[before.temperature] += 1
        tally.draft[after_draft.temperature] += 1
        if before.temperature == after_draft.temperature:
            continue
        tally.changed += 1
        tally.moves[f"{before.temperature}_to_{after_draft.temperature}"] += 1
        key = (-abs(round(after_draft.score - before.score, 2)), str(profile["id"]))
        if tally.wants(key):
            # Breakdowns for the few listed leads only: their end states evaluated again, at
            # the same moment (the same numbers), explaining this time.
            why_before = engine.evaluate(active, before.state, facts, now).breakdown
            why_after = engine.evaluate(draft, after_draft.state, facts, now).breakdown
            tally.add(
                key,
                {
                    "lead_id": str(profile["id"]),
                    "label": lead_label(profile),
                    "from": before.temperature,
                    "to": after_draft.temperature,
                    "score_active": before.score,
                    "score_draft": after_draft.score,
                    "rules": rule_deltas(why_before, why_after),
                },
            )
    last: uuid.UUID = profiles[-1]["id"]
    return last, len(profiles)


async def preview(
    conn: AsyncConnection,
    site_id: uuid.UUID,
    document: Mapping[str, Any],
    *,
    now: datetime,
    visit_timeout: timedelta,
    limit: int,
) -> dict[str, Any]:
    """How the site's leads would be scored by a draft vs. the active rule set, at `now`,
    computed here and now: leads in id order, `PREVIEW_LEADS_PER_QUERY` at a time (see
    `preview_batch`). A large site's preview runs as a job instead (`app.scoring.preview_jobs`)."""
    version, definition = await active_definition(conn, site_id)
    sets = compile_preview_sets(document, version, definition)
    tally = PreviewTally(limit=limit)
    after: uuid.UUID | None = None
    while True:
        after, _ = await preview_batch(
            conn,
            site_id,
            sets,
            tally,
            after=after,
            upto=None,
            batch_leads=PREVIEW_LEADS_PER_QUERY,
            now=now,
            visit_timeout=visit_timeout,
        )
        if after is None:
            return tally.answer(version, now)


def _zero() -> dict[str, int]:
    return {"cold": 0, "warm": 0, "hot": 0}
