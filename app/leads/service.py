"""The leads read API's logic: listing with filters and keyset pages, a lead's card with its
score evaluated now, and moving a lead through the sales funnel."""

import base64
import binascii
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, exists, func, or_, select, tuple_, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.events import page_url
from app.domain.lead_rows import LeadRow, lead_row
from app.domain.lead_writes import LeadPatch
from app.domain.tables import Event, Lead
from app.errors import AppError, Conflict, Unprocessable
from app.scoring import engine as scoring_engine
from app.scoring import scorer
from app.webhooks import timers
from app.webhooks.models import LeadTimer

TIMELINE_EVENTS = 50
TOP_INTERESTS = 5
FUNNEL_ORDER = ("new", "contacted", "qualified", "won")


class InvalidCursor(AppError):
    status_code = 400
    code = "invalid_cursor"


@dataclass(frozen=True)
class LeadFilter:
    temperatures: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    min_score: float | None = None
    interest: str | None = None
    city: str | None = None
    identified: bool | None = None
    owner: str | None = None  # "none" (unowned) or a person's id
    updated_since: datetime | None = None

    def fingerprint(self) -> dict[str, Any]:
        return {
            "temperature": sorted(self.temperatures),
            "status": sorted(self.statuses),
            "min_score": self.min_score,
            "interest": self.interest,
            "city": self.city.lower() if self.city else None,
            "identified": self.identified,
            "owner": self.owner,
            "updated_since": self.updated_since.isoformat() if self.updated_since else None,
        }


@dataclass(frozen=True)
class PageKey:
    """Where a lead sits in a sort order, enough to continue after it (and to tag the page)."""

    id: uuid.UUID
    sort_value: float | datetime | None
    updated_at: datetime


def as_profile(lead: Lead) -> LeadRow:
    return lead_row((column.key, getattr(lead, column.key)) for column in Lead.__table__.columns)


def top_interests(interests: dict[str, Any]) -> list[dict[str, Any]]:
    ranked = sorted(interests.items(), key=lambda item: (-item[1], item[0]))
    return [{"category": c, "views": n} for c, n in ranked[:TOP_INTERESTS]]


# -- listing -----------------------------------------------------------------------------------


def encode_cursor(sort: str, key: PageKey) -> str:
    value = key.sort_value.isoformat() if isinstance(key.sort_value, datetime) else key.sort_value
    raw = orjson.dumps({"s": sort, "v": value, "id": str(key.id)})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort: str, cursor: str) -> tuple[float | datetime | None, uuid.UUID]:
    """The (sort value, id) a page continues after; 400 `invalid_cursor` if it is not ours."""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        lead_id = uuid.UUID(data["id"])
        value = data["v"]
        if data["s"] != sort:
            raise InvalidCursor(f"This cursor belongs to sort={data['s']}, not sort={sort}.")
        if sort == "score":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError("score")
            return float(value), lead_id
        return (None if value is None else datetime.fromisoformat(value)), lead_id
    except InvalidCursor:
        raise
    except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise InvalidCursor(
            "The cursor is not valid: pass next_cursor from a previous page unchanged."
        ) from exc


def _interest_filter(dialect: str, category: str) -> ColumnElement[bool]:
    if dialect == "postgresql":  # `?` on JSONB: a GIN index on interests can answer it
        return type_coerce(Lead.interests, JSONB).has_key(category)
    keys = func.json_each(Lead.interests).table_valued("key").alias("interest_keys")
    return exists().select_from(keys).where(keys.c.key == category)


def _city_filter(city: str) -> ColumnElement[bool]:
    # lower() folds only ASCII on SQLite (and on PostgreSQL with a C locale): also match the
    # usual spellings of a non-ASCII name ("Казань", "казань", "КАЗАНЬ").
    variants = {city, city.lower(), city.upper(), city.title(), city.capitalize()}
    return or_(func.lower(Lead.city) == city.lower(), Lead.city.in_(sorted(variants)))


def _filters(dialect: str, site_id: uuid.UUID, f: LeadFilter) -> list[ColumnElement[bool]]:
    where = [Lead.site_id == site_id, Lead.merged_into_id.is_(None)]
    if f.temperatures:
        where.append(Lead.temperature.in_(f.temperatures))
    if f.statuses:
        where.append(Lead.status.in_(f.statuses))
    if f.min_score is not None:
        where.append(Lead.score >= f.min_score)
    if f.interest is not None:
        where.append(_interest_filter(dialect, f.interest))
    if f.city is not None:
        where.append(_city_filter(f.city))
    if f.identified is not None:
        where.append(Lead.identified.is_(f.identified))
    if f.owner == "none":
        where.append(Lead.owner_id.is_(None))
    elif f.owner is not None:
        where.append(Lead.owner_id == uuid.UUID(f.owner))
    if f.updated_since is not None:
        where.append(Lead.updated_at > f.updated_since)
    return where


def _after(sort: str, value: float | datetime | None, lead_id: uuid.UUID) -> ColumnElement[bool]:
    """Keyset: the rows after (value, id) in the page order (descending, nulls last). For
    recency, a row comparison (an index condition, so a deep page does not walk the pages
    before it) that reaches only the leads seen at some time: `page_keys` goes on with the
    never-seen ones."""
    if sort == "score":
        return or_(Lead.score < value, and_(Lead.score == value, Lead.id < lead_id))
    if value is None:
        return and_(Lead.last_seen_at.is_(None), Lead.id < lead_id)
    return tuple_(Lead.last_seen_at, Lead.id) < tuple_(value, lead_id)


async def page_keys(
    session: AsyncSession,
    site_id: uuid.UUID,
    filters: LeadFilter,
    sort: str,
    limit: int,
    cursor: str | None,
) -> list[PageKey]:
    """The next `limit` leads' keys in the sort order, after `cursor` (a narrow query, so that
    a poll answered 304 reads no profiles)."""
    dialect = session.get_bind().dialect.name
    sort_column = Lead.score if sort == "score" else Lead.last_seen_at
    where = _filters(dialect, site_id, filters)
    order = sort_column.desc() if sort == "score" else sort_column.desc().nulls_last()
    if cursor is None:
        return await _keys(session, sort_column, where, order, limit)
    value, lead_id = decode_cursor(sort, cursor)
    keys = await _keys(session, sort_column, [*where, _after(sort, value, lead_id)], order, limit)
    if sort == "recent" and value is not None and len(keys) < limit:
        # The leads seen at some time ran out: the never-seen ones come last.
        never_seen = [*where, Lead.last_seen_at.is_(None)]
        keys += await _keys(session, sort_column, never_seen, order, limit - len(keys))
    return keys


async def _keys(
    session: AsyncSession,
    sort_column: Any,
    where: list[ColumnElement[bool]],
    order: Any,
    limit: int,
) -> list[PageKey]:
    rows = await session.execute(
        select(Lead.id, sort_column, Lead.updated_at)
        .where(*where)
        .order_by(order, Lead.id.desc())
        .limit(limit)
    )
    return [PageKey(lead_id, value, updated_at) for lead_id, value, updated_at in rows]


def page_etag(fingerprint: dict[str, Any], keys: Sequence[PageKey], has_more: bool) -> str:
    """A weak validator of what a page shows: the query, and each lead's id and version."""
    digest = hashlib.sha256(orjson.dumps(fingerprint, option=orjson.OPT_SORT_KEYS))
    for key in keys:
        digest.update(f"|{key.id}:{key.updated_at.isoformat()}".encode())
    digest.update(b"|more" if has_more else b"|end")
    return f'W/"{digest.hexdigest()[:32]}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag.removeprefix("W/") in tags


async def load_leads(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[Lead]:
    """The leads with these ids, in the order given."""
    if not ids:
        return []
    found = {lead.id: lead for lead in await session.scalars(select(Lead).where(Lead.id.in_(ids)))}
    return [found[i] for i in ids if i in found]


# -- a lead's card -----------------------------------------------------------------------------


async def resolve_lead(
    session: AsyncSession, site_id: uuid.UUID, lead_id: uuid.UUID, *, for_update: bool = False
) -> Lead | None:
    """The site's lead by id; a merged lead's id answers the lead it was merged into."""
    query = select(Lead).where(Lead.site_id == site_id)
    if for_update:  # a status change reads the status it checks under a row lock
        query = query.with_for_update()
    lead = await session.scalar(query.where(Lead.id == lead_id))
    for _ in range(8):  # merges re-point their chains, so this is one hop at most in practice
        if lead is None or lead.merged_into_id is None:
            break
        lead = await session.scalar(query.where(Lead.id == lead.merged_into_id))
    return lead


async def merged_ids(session: AsyncSession, lead: Lead) -> list[uuid.UUID]:
    rows = await session.scalars(
        select(Lead.id).where(Lead.merged_into_id == lead.id).order_by(Lead.created_at, Lead.id)
    )
    return list(rows)


async def score_now(
    session: AsyncSession,
    lead: Lead,
    rule_sets: scorer.RuleSetCache,
    visit_timeout: timedelta,
    now: datetime,
) -> scoring_engine.ScoreResult:
    """The lead's score at `now` with the site's active rule set (nothing is written). A lead
    scored by another version is replayed from its history, so versions never mix."""
    conn = await session.connection()
    compiled = (await rule_sets.get_many(conn, [lead.site_id]))[lead.site_id]
    profile = as_profile(lead)
    state: dict[str, Any] | None = lead.score_state
    if lead.rule_set_version is not None and lead.rule_set_version != compiled.version:
        replayed = await scorer.rescore_from_history(
            conn, profile, compiled, visit_timeout, now=now
        )
        state = replayed.state
    facts = scorer.facts_from_profile(profile)
    return scoring_engine.evaluate(compiled, state or scoring_engine.empty_state(), facts, now)


async def timeline(session: AsyncSession, lead: Lead) -> list[dict[str, Any]]:
    """The lead's most recent events, newest first (merged leads' events included: merging
    moves them to the survivor)."""
    events = await session.scalars(
        select(Event)
        .where(Event.lead_id == lead.id)
        .order_by(Event.timestamp.desc(), Event.id.desc())
        .limit(TIMELINE_EVENTS)
    )
    return [
        {
            "message_id": e.message_id,
            "type": e.type,
            "name": e.name,
            "timestamp": e.timestamp,
            "url": page_url(e.context, e.properties),
            "properties": e.properties or {},
        }
        for e in events
    ]


async def escalation(session: AsyncSession, lead: Lead) -> list[dict[str, Any]]:
    """The escalation ladder of the lead's current hot spell: each step, when it is due and
    what became of it (pending, fired, cancelled: a contact stopped it)."""
    if lead.became_hot_at is None:
        return []
    rows = await session.scalars(
        select(LeadTimer)
        .where(
            LeadTimer.lead_id == lead.id,
            LeadTimer.kind.in_(timers.FIRST_CONTACT_KINDS),
            LeadTimer.episode == lead.became_hot_at.isoformat(),
        )
        .order_by(LeadTimer.due_at, LeadTimer.mark)
    )
    return [
        {
            "step": t.kind,
            "mark_minutes": t.mark,
            "due_at": t.due_at,
            "status": t.status,
            "fired_at": t.fired_at,
        }
        for t in rows
    ]


async def at_risk(session: AsyncSession, leads: Sequence[Lead]) -> dict[uuid.UUID, datetime]:
    """When each of these leads was marked at risk in its current hot spell (the ladder's
    `mark_at_risk` step fired), for those that were: one query over the timers' lead key."""
    spells = {lead.id: lead.became_hot_at.isoformat() for lead in leads if lead.became_hot_at}
    if not spells:
        return {}
    rows = await session.execute(
        select(LeadTimer.lead_id, LeadTimer.episode, LeadTimer.fired_at).where(
            LeadTimer.lead_id.in_(spells),
            LeadTimer.kind == "mark_at_risk",
            LeadTimer.status == "fired",
        )
    )
    return {r.lead_id: r.fired_at for r in rows if spells.get(r.lead_id) == r.episode}


# -- the sales funnel --------------------------------------------------------------------------


def _field_error(field: str, message: str, kind: str) -> Unprocessable:
    return Unprocessable(
        message, details=[{"loc": ["body", field], "message": message, "type": kind}]
    )


def _transition_allowed(current: str, target: str) -> bool:
    if target in (current, "lost"):
        return True
    if target == "new":  # reopening
        return current in ("lost", "won")
    if current not in FUNNEL_ORDER:  # lost: reopen first
        return False
    return FUNNEL_ORDER.index(target) > FUNNEL_ORDER.index(current)


def status_patch(lead: Lead, changes: dict[str, Any], now: datetime) -> LeadPatch:
    """What a PATCH (the fields the client sent) changes in the lead: forward through
    new -> contacted -> qualified -> won, `lost` with a reason from any status, and
    lost/won back to new. 422 for an inconsistent request, 409 for a move not allowed.
    First contact is recorded through the contacts API (it stops the speed-to-lead clock), not
    by this status change."""
    if not changes:
        raise _field_error("status", "Send at least one of status, lost_reason, note.", "missing")
    target = changes.get("status") or lead.status
    reason = changes.get("lost_reason")
    if "status" in changes and changes["status"] is None:
        raise _field_error("status", "status cannot be null.", "null")
    if reason is not None and changes.get("status") != "lost":
        raise _field_error(
            "lost_reason", "lost_reason can only be given with status 'lost'.", "reason_not_lost"
        )
    if changes.get("status") == "lost" and reason is None and lead.status != "lost":
        raise _field_error("lost_reason", "A lost lead needs a lost_reason.", "missing_lost_reason")
    if not _transition_allowed(lead.status, target):
        raise Conflict(
            f"A lead cannot move from '{lead.status}' to '{target}': leads move forward through "
            "new, contacted, qualified, won; any lead can be lost; lost or won can reopen as new.",
            code="invalid_status_transition",
        )
    patch: LeadPatch = {}
    if target != lead.status:
        patch.update({"status": target, "status_changed_at": now, "lost_note": None})
        if target != "lost":
            patch["lost_reason"] = None
    if reason is not None:
        patch["lost_reason"] = reason
    if "note" in changes:
        patch["lost_note"] = changes["note"]
    return patch
