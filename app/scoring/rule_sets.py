"""A site's rule sets, as the rule-set API sees them: versions, publishing (with the
re-scoring job it starts) and previews of a draft.

Publishing adds version max + 1 (the site row is locked, so concurrent publishes queue up)
and a re-scoring job, which `app.scoring.rescoring` runs (or the request, for a small site).
Preview replays the stored events with a draft, compares with the active set and writes
nothing.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.domain.tables import Event, Lead
from app.errors import AppError
from app.scoring import engine
from app.scoring.models import RescoreJob, RuleSetVersion
from app.scoring.schemas import RuleSet, RuleSetInvalid, parse_rule_set
from app.scoring.scorer import (
    default_definition,
    facts_from_profile,
    rule_set_for_version,
    stored_scoring_events,
)
from app.sites.models import Site

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


async def publish(
    session: AsyncSession,
    site_id: uuid.UUID,
    document: Mapping[str, Any],
    *,
    now: datetime,
    sync_max_leads: int,
    lease: timedelta,
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
    definition, _ = validate_draft(document, number)
    version = RuleSetVersion(site_id=site_id, version=number, definition=definition, created_at=now)
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
    return Published(version=version, job=job, synchronous=synchronous)


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


# --- preview ----------------------------------------------------------------------------------

_leads = cast(Table, Lead.__table__)
_events = cast(Table, Event.__table__)
_PREVIEW_COLUMNS = [
    _leads.c[name]
    for name in (
        "id", "created_at", "city", "country", "traits", "contacts", "visits", "page_views",
        "engaged_seconds", "session_seconds", "orders", "last_seen_at", "interests",
        "rule_set_version", "score_state",
    )
]  # fmt: skip


async def preview(
    conn: AsyncConnection,
    site_id: uuid.UUID,
    document: Mapping[str, Any],
    *,
    now: datetime,
    visit_timeout: timedelta,
    limit: int,
) -> dict[str, Any]:
    """How the site's leads would be scored by a draft vs. the active rule set, at `now`.

    Leads are read in id order, a few hundred at a time, each batch's events in one query
    ordered by (lead, time). Each lead's events are replayed with the draft (compiled once);
    under the active set a lead is its stored state evaluated at `now` (what replaying would
    give: ingestion applied the same events with the same engine), or, scored by another
    version, a replay too."""
    active_row = (
        await conn.execute(
            select(RuleSetVersion.version, RuleSetVersion.definition)
            .where(RuleSetVersion.site_id == site_id)
            .order_by(RuleSetVersion.version.desc())
            .limit(1)
        )
    ).first()
    active_number = active_row.version if active_row else 0
    _, draft_set = validate_draft(document, active_number + 1)
    draft = engine.compile_rule_set(draft_set)
    active = engine.compile_rule_set(
        rule_set_for_version(active_row.definition, active_number)
        if active_row
        else rule_set_for_version(default_definition(), 1)  # a site made outside the service
    )
    counts = {"active": _zero(), "draft": _zero()}
    changes: list[dict[str, Any]] = []
    changed = leads = events_replayed = 0
    after: uuid.UUID | None = None
    while True:
        query = select(*_PREVIEW_COLUMNS).where(
            _leads.c.site_id == site_id, _leads.c.merged_into_id.is_(None)
        )
        if after is not None:
            query = query.where(_leads.c.id > after)
        profiles = [
            dict(row)
            for row in (
                await conn.execute(query.order_by(_leads.c.id).limit(PREVIEW_LEADS_PER_QUERY))
            ).mappings()
        ]
        if not profiles:
            break
        after = profiles[-1]["id"]
        history = await _histories(conn, site_id, [p["id"] for p in profiles])
        for profile in profiles:
            rows = history.get(profile["id"], [])
            scoring_events = stored_scoring_events(rows, visit_timeout)
            facts = facts_from_profile(profile)
            state = profile["score_state"]
            if state and profile["rule_set_version"] == active.version:
                before = engine.evaluate(active, state, facts, now)
            else:
                before = engine.replay(active, scoring_events, facts, now)
            after_draft = engine.replay(draft, scoring_events, facts, now)
            leads += 1
            events_replayed += len(scoring_events)
            counts["active"][before.temperature] += 1
            counts["draft"][after_draft.temperature] += 1
            if before.temperature != after_draft.temperature:
                changed += 1
                if len(changes) < limit:
                    changes.append(
                        {
                            "lead_id": str(profile["id"]),
                            "from": before.temperature,
                            "to": after_draft.temperature,
                            "score_active": before.score,
                            "score_draft": after_draft.score,
                        }
                    )
    return {
        "active_version": active_number,
        "evaluated_at": now,
        "leads": leads,
        "events": events_replayed,
        "active": counts["active"],
        "draft": counts["draft"],
        "changed": changed,
        "changes": changes,
        "changes_truncated": changed > len(changes),
    }


def _zero() -> dict[str, int]:
    return {"cold": 0, "warm": 0, "hot": 0}


async def _histories(
    conn: AsyncConnection, site_id: uuid.UUID, lead_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[tuple[Any, ...]]]:
    """The leads' stored (not bot) events as rows for `stored_scoring_events`, each lead's in
    time order. Of the context only the page url matters to scoring: the database extracts
    it, so the rest (user agent, ...) is neither sent nor decoded."""
    t = _events
    page_url = t.c.context[("page", "url")].as_string()
    result = await conn.execute(
        select(t.c.lead_id, t.c.message_id, t.c.type, t.c.name, t.c.properties, page_url)
        .add_columns(t.c.timestamp)
        .where(t.c.site_id == site_id, t.c.lead_id.in_(lead_ids), t.c.is_bot.is_(False))
        .order_by(t.c.lead_id, t.c.timestamp, t.c.id)
    )
    by_lead: dict[uuid.UUID, list[tuple[Any, ...]]] = {}
    for lead_id, message_id, kind, name, properties, url, at in result.all():
        context = {"page": {"url": url}} if url else None
        by_lead.setdefault(lead_id, []).append((message_id, kind, name, properties, context, at))
    return by_lead
