"""Who works a lead that turned hot: assigned in the transaction that marks it hot (the webhook
consumer of ingestion's changes), so that the `lead.hot` payload already names its owner.

Round-robin among the site's managers on duty now: active, role `manager`, their on-duty
switch on, and inside their working hours in their own time zone. Fair over the day: the one
with the fewest leads assigned since 00:00 UTC gets the next, ties to the one assigned least
recently (never assigned first), then by id. A manager whose open hot leads (owned, not merged,
neither won nor lost) reached their `max_open_hot_leads` is skipped. With nobody left, an
active person marked `on_call` gets it (the same fairness among them, ignoring hours and
limits); with nobody on call either, the lead stays unowned for a manager to claim. Before
the round-robin, the admins' rules (app.team.rules): the first rule the lead matches with
one of its people free gets it, by the same fairness among them. The escalation ladder's
handover (`hand_over`) picks the same way among the managers, the owner left out.

Two transactions assigning for one site at once would read the same counts and pick the same
person: on PostgreSQL each takes a transaction-scoped advisory lock per site first (in site
order, so two groups never wait on each other crosswise), which holds until the transaction
that marks the lead hot commits. SQLite has one writer at a time anyway."""

import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any, cast

from sqlalchemy import Table, case, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain import lead_writes
from app.domain.lead_rows import LeadRow
from app.domain.tables import Lead
from app.team import rules
from app.team.models import User
from app.team.schemas import WorkingHours

# The advisory lock's first key: this lock's own space (the second is the site).
_LOCK_SPACE = 0x4C480D  # "LH" 13
_users = cast(Table, User.__table__)
_leads = cast(Table, Lead.__table__)
CLOSED_STATUSES = ("won", "lost")


@dataclass(frozen=True, slots=True)
class Owner:
    id: uuid.UUID
    name: str
    email: str

    def as_json(self) -> dict[str, Any]:
        return {"id": str(self.id), "name": self.name, "email": self.email}


@dataclass(slots=True)
class _Candidate:
    owner: Owner
    today: int
    last: datetime | None
    open: int
    limit: int | None
    manager: bool = True

    def key(self) -> tuple[int, float, str]:
        last = self.last.timestamp() if self.last is not None else float("-inf")
        return (self.today, last, str(self.owner.id))


async def lock_site(conn: AsyncConnection, site_id: uuid.UUID) -> None:
    """Serialize assignment per site until the transaction ends (PostgreSQL; SQLite's one
    writer already does)."""
    if conn.dialect.name == "postgresql":
        key = int.from_bytes(site_id.bytes[:4], "big", signed=True)
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(:space, :key)"), {"space": _LOCK_SPACE, "key": key}
        )


def on_duty_now(user: Any, now: datetime) -> bool:
    """Whether a person is working at `now`: their switch on and inside their hours."""
    hours = WorkingHours.model_validate(user.working_hours)
    return bool(user.on_duty) and hours.is_working(now, user.time_zone)


async def _candidates(
    conn: AsyncConnection,
    site_id: uuid.UUID,
    now: datetime,
    *,
    on_call: bool,
    also: Collection[uuid.UUID] = (),
) -> dict[uuid.UUID, _Candidate]:
    """Who can take a lead now, by id: the managers on duty (and the people of `also`, the
    rules', when on duty), or, `on_call`, the active people on call (any hours)."""
    where = [_users.c.site_id == site_id, _users.c.active]
    if on_call:
        where.append(_users.c.on_call)
    else:
        where.append(_users.c.on_duty)
        who = _users.c.role == "manager"
        where.append(who | _users.c.id.in_(list(also)) if also else who)
    people = [
        u
        for u in (await conn.execute(select(_users).where(*where))).all()
        if on_call or on_duty_now(u, now)
    ]
    if not people:
        return {}
    day = datetime.combine(now.date(), time(), now.tzinfo)
    open_lead = _leads.c.merged_into_id.is_(None) & _leads.c.status.not_in(CLOSED_STATUSES)
    stats = {
        row.owner_id: row
        for row in await conn.execute(
            select(
                _leads.c.owner_id,
                func.sum(case((_leads.c.owner_assigned_at >= day, 1), else_=0)).label("today"),
                func.max(_leads.c.owner_assigned_at).label("last"),
                func.sum(case((open_lead, 1), else_=0)).label("open"),
            )
            .where(_leads.c.owner_id.in_([u.id for u in people]))
            .group_by(_leads.c.owner_id)
        )
    }
    out = {}
    for u in people:
        row = stats.get(u.id)
        out[u.id] = _Candidate(
            owner=Owner(u.id, u.name, u.email),
            today=int(row.today or 0) if row else 0,
            last=row.last if row else None,
            open=int(row.open or 0) if row else 0,
            limit=None if on_call else u.max_open_hot_leads,
            manager=u.role == "manager",
        )
    return out


def _pick(candidates: Iterable[_Candidate]) -> _Candidate | None:
    free = [c for c in candidates if c.limit is None or c.open < c.limit]
    return min(free, key=_Candidate.key, default=None)


def _take(chosen: _Candidate, p: LeadRow, now: datetime) -> None:
    chosen.today, chosen.last, chosen.open = chosen.today + 1, now, chosen.open + 1
    p["owner_id"], p["owner_assigned_at"] = chosen.owner.id, now


async def assign_hot(
    conn: AsyncConnection,
    profiles: Sequence[LeadRow],
    now: datetime,
    *,
    no_on_call: Collection[uuid.UUID] = (),
) -> dict[uuid.UUID, Owner]:
    """Give each unowned lead of `profiles` (they just turned hot, written in this
    transaction) an owner, written and set on the profile; answers the owners by lead. The
    site's assignment rules come first (the first matching rule with somebody free), then
    the round-robin; the on-call fallback is left out for the sites of `no_on_call` (their
    leads wait for the next opening)."""
    unowned = [p for p in profiles if p["owner_id"] is None]
    assigned: dict[uuid.UUID, Owner] = {}
    for site_id in sorted({p["site_id"] for p in unowned}):
        await lock_site(conn, site_id)
        leads = sorted((p for p in unowned if p["site_id"] == site_id), key=lambda p: p["id"])
        site_rules = await rules.enabled_rules(conn, site_id)
        wanted = {u for rule in site_rules for u in rule.user_ids}
        people = await _candidates(conn, site_id, now, on_call=False, also=wanted)
        managers = [c for c in people.values() if c.manager]
        on_call: dict[uuid.UUID, _Candidate] | None = None
        for p in leads:
            chosen = None
            for rule in site_rules:
                if rule.matches(p):
                    chosen = _pick(people[u] for u in rule.user_ids if u in people)
                    if chosen is not None:
                        break
            chosen = chosen or _pick(managers)
            if chosen is None and site_id not in no_on_call:
                if on_call is None:
                    on_call = await _candidates(conn, site_id, now, on_call=True)
                chosen = _pick(on_call.values())
            if chosen is None:
                continue
            _take(chosen, p, now)
            assigned[p["id"]] = chosen.owner
    await lead_writes.set_owners(conn, [p for p in unowned if p["id"] in assigned])
    return assigned


async def try_lock_site(conn: AsyncConnection, site_id: uuid.UUID) -> bool:
    """`lock_site` without waiting (the timer loop, which holds timer rows that a group
    holding this lock may be waiting for): False if another transaction holds it."""
    if conn.dialect.name != "postgresql":
        return True
    key = int.from_bytes(site_id.bytes[:4], "big", signed=True)
    got = await conn.scalar(
        text("SELECT pg_try_advisory_xact_lock(:space, :key)"), {"space": _LOCK_SPACE, "key": key}
    )
    return bool(got)


async def hand_over(conn: AsyncConnection, p: LeadRow, now: datetime) -> Owner | None:
    """Give the lead (locked by the caller) to the next manager on duty other than its owner,
    by the same round-robin (the caller holds the site's lock); None: nobody else works."""
    people = await _candidates(conn, p["site_id"], now, on_call=False)
    chosen = _pick(c for c in people.values() if c.manager and c.owner.id != p["owner_id"])
    if chosen is None:
        return None
    _take(chosen, p, now)
    await lead_writes.set_owners(conn, [p])
    return chosen.owner


async def admins(
    conn: AsyncConnection, site_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """The active admins of each site, by id."""
    wanted = set(site_ids)
    out: dict[uuid.UUID, list[uuid.UUID]] = {site: [] for site in wanted}
    if wanted:
        rows = await conn.execute(
            select(_users.c.site_id, _users.c.id)
            .where(_users.c.site_id.in_(wanted), _users.c.active, _users.c.role == "admin")
            .order_by(_users.c.created_at, _users.c.id)
        )
        for row in rows:
            out[row.site_id].append(row.id)
    return out


async def owners(conn: AsyncConnection, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, Owner]:
    """The people of these ids (webhook payloads, the leads API), deactivated ones too."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await conn.execute(
        select(_users.c.id, _users.c.name, _users.c.email).where(_users.c.id.in_(wanted))
    )
    return {r.id: Owner(r.id, r.name, r.email) for r in rows}
