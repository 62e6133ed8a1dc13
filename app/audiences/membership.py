"""Audience membership kept current, in the transaction of the change that moves a lead.

No scan per event: when a group of events (or a background job) changes leads, only those
leads are evaluated, in Python, against their site's audiences, from the profiles already in
hand; the group's one extra read is the site's audiences with these leads' membership rows.
A lead entering or leaving gets its `audience_members` row written or deleted and an
`audience.entered` / `audience.left` message in the outbox, in the same transaction.

Time moves leads too, with no event: decay cools a lead (the temperature refresher writes it
and hands it to the lead-change port like any other change), and a time condition ("last seen
within / not within", "cart updated within") flips at a known moment. That moment is folded
into the lead's `next_check_at` (the refresher's due time), so the refresher, which reads only
due leads, looks at the lead then and hands it here (`Memberships.look`)."""

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.audiences.filters import CompiledAudience, compile_audience
from app.audiences.models import Audience, AudienceMember
from app.config import WebhookSettings
from app.db import utcnow
from app.domain import lead_writes
from app.domain.changes import LeadChange, Scorer
from app.domain.events import IngestEvent
from app.domain.lead_rows import LeadRow
from app.scoring import scorer
from app.team import assignment
from app.webhooks import outbox
from app.webhooks.payloads import lead_data, top_rules

_audiences = cast(Table, Audience.__table__)
_members = cast(Table, AudienceMember.__table__)

# Compiled filters by (audience, version): an audience is compiled once per process and edit.
_compiled: dict[tuple[uuid.UUID, int], CompiledAudience] = {}
_COMPILED_MAX = 10_000


def compiled(row: Any) -> CompiledAudience:
    key = (row.id, row.version)
    found = _compiled.get(key)
    if found is None:
        if len(_compiled) >= _COMPILED_MAX:
            _compiled.clear()
        found = _compiled[key] = compile_audience(row.id, row.site_id, row.name, row.filters)
    return found


async def site_audiences(
    conn: AsyncConnection, site_ids: Iterable[uuid.UUID]
) -> list[CompiledAudience]:
    sites = set(site_ids)
    if not sites:
        return []
    rows = await conn.execute(
        select(
            _audiences.c.id,
            _audiences.c.site_id,
            _audiences.c.name,
            _audiences.c.filters,
            _audiences.c.version,
        ).where(_audiences.c.site_id.in_(sites))
    )
    return [compiled(row) for row in rows]


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    """An id as a UUID: a re-scoring job's process may hand a lead's ids over as text."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


class DueTimes:
    """The scorer port, wrapped for ingestion: once a group's leads are scored, and before
    they are written, each lead's `next_check_at` is brought forward to the next moment an
    audience's time condition moves it (so the group writes it with the lead, not in one more
    statement). Its sites' audiences are read in `prepare`, in the group's transaction; the
    membership consumer still checks the due times, for groups scored without this."""

    def __init__(self, scorer: Scorer) -> None:
        self._scorer = scorer
        self._audiences: dict[uuid.UUID, list[CompiledAudience]] = {}

    async def prepare(self, conn: AsyncConnection, site_ids: Iterable[uuid.UUID]) -> None:
        sites = set(site_ids)
        await self._scorer.prepare(conn, sites)
        found: dict[uuid.UUID, list[CompiledAudience]] = {site: [] for site in sites}
        for audience in await site_audiences(conn, sites):
            found[audience.site_id].append(audience)
        self._audiences.update(found)

    async def rescore_stale(
        self, conn: AsyncConnection, profiles: Sequence[LeadRow], force: set[uuid.UUID]
    ) -> None:
        await self._scorer.rescore_stale(conn, profiles, force)

    def apply(self, profile: LeadRow, event: IngestEvent, now: datetime) -> None:
        self._scorer.apply(profile, event, now)

    def replay(self, profile: LeadRow, events: Sequence[IngestEvent]) -> None:
        self._scorer.replay(profile, events)

    def finish(self, profiles: Iterable[LeadRow], now: datetime) -> None:
        profiles = list(profiles)
        self._scorer.finish(profiles, now)
        for p in profiles:
            for audience in self._audiences.get(p["site_id"], ()):
                at = audience.boundary(p, now)
                if at is not None and (p["next_check_at"] is None or at < p["next_check_at"]):
                    p["next_check_at"] = at


class Memberships:
    """The lead-change consumer (`AfterGroup`: ingestion, re-scoring, repairs) and the
    refresher's membership port. Holds settings only, so it pickles into job processes."""

    def __init__(
        self,
        settings: WebhookSettings,
        rule_sets: scorer.RuleSetCache | None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._settings = settings
        self._rule_sets = rule_sets
        self._now = now

    async def __call__(self, conn: AsyncConnection, changes: list[LeadChange]) -> None:
        """After the leads are written: evaluate them, and write the due times that audiences
        bring forward (one statement, for the leads whose time moved)."""
        now = self._now() if self._now is not None else utcnow()
        request_ids = {c.profile["id"]: c.request_ids for c in changes}
        profiles = [c.profile for c in changes]
        moved = await self.update(conn, profiles, now, request_ids=request_ids)
        await lead_writes.set_next_checks(conn, moved)

    async def look(self, conn: AsyncConnection, profiles: Sequence[LeadRow], now: datetime) -> None:
        """The refresher's due leads, before it writes them: their `next_check_at` is
        brought forward in place (the refresher writes it)."""
        await self.update(conn, profiles, now)

    async def update(
        self,
        conn: AsyncConnection,
        profiles: Sequence[LeadRow],
        now: datetime,
        *,
        audiences: Sequence[CompiledAudience] | None = None,
        notify: bool = True,
        request_ids: dict[uuid.UUID, tuple[str, ...]] | None = None,
    ) -> list[LeadRow]:
        """Bring these leads' membership (of `audiences`, default: every audience of their
        sites) to what their profiles say at `now`; answer the leads whose `next_check_at`
        was brought forward by an audience's time condition (set in the profiles)."""
        if not profiles:
            return []
        lead_ids = [_uuid(p["id"]) for p in profiles]
        if audiences is None:  # the sites' audiences and these leads' rows: one statement
            audiences, current = await _audiences_and_members(
                conn, {_uuid(p["site_id"]) for p in profiles}, lead_ids
            )
        else:
            current = await _memberships(conn, [a.id for a in audiences], lead_ids)
        if not audiences:
            return []
        by_site: dict[uuid.UUID, list[CompiledAudience]] = {}
        for audience in audiences:
            by_site.setdefault(audience.site_id, []).append(audience)
        leads = [p for p in profiles if _uuid(p["site_id"]) in by_site]
        entered: list[tuple[CompiledAudience, LeadRow]] = []
        left: list[tuple[CompiledAudience, LeadRow]] = []
        moved: list[LeadRow] = []
        for p in leads:
            next_time = p["next_check_at"]
            earlier = False
            lead_id = _uuid(p["id"])
            for audience in by_site[_uuid(p["site_id"])]:
                member = audience.matches(p, now)
                was = (audience.id, lead_id) in current
                if member and not was:
                    entered.append((audience, p))
                elif was and not member:
                    left.append((audience, p))
                at = audience.boundary(p, now)
                if at is not None and (next_time is None or at < next_time):
                    next_time, earlier = at, True
            if earlier:
                p["next_check_at"] = next_time
                moved.append(cast(LeadRow, {**p, "id": lead_id}))  # written by id
        if entered:
            await conn.execute(
                insert(_members),
                [
                    {"audience_id": a.id, "lead_id": _uuid(p["id"]), "entered_at": now}
                    for a, p in entered
                ],
            )
        if left:
            await conn.execute(
                delete(_members).where(
                    and_(
                        _members.c.audience_id == bindparam("_audience"),
                        _members.c.lead_id == bindparam("_lead"),
                    )
                ),
                [{"_audience": a.id, "_lead": _uuid(p["id"])} for a, p in left],
            )
        if notify and (entered or left):
            sites = {_uuid(p["site_id"]) for _, p in (*entered, *left)}
            wanted = await outbox.subscribed_sites(
                conn, sites, (outbox.AUDIENCE_ENTERED, outbox.AUDIENCE_LEFT)
            )
            entered = [(a, p) for a, p in entered if _uuid(p["site_id"]) in wanted]
            left = [(a, p) for a, p in left if _uuid(p["site_id"]) in wanted]
            if entered or left:
                await self._send(conn, entered, left, now, request_ids or {})
        return moved

    async def _send(
        self,
        conn: AsyncConnection,
        entered: list[tuple[CompiledAudience, LeadRow]],
        left: list[tuple[CompiledAudience, LeadRow]],
        now: datetime,
        request_ids: dict[uuid.UUID, tuple[str, ...]],
    ) -> None:
        profiles = {p["id"]: p for _, p in (*entered, *left)}
        breakdowns = await top_rules(conn, self._rule_sets, profiles.values())
        owners = await assignment.owners(conn, (p["owner_id"] for p in profiles.values()))
        messages = []
        for event_type, pairs in ((outbox.AUDIENCE_ENTERED, entered), (outbox.AUDIENCE_LEFT, left)):
            for audience, p in pairs:
                data = lead_data(
                    p,
                    breakdowns.get(p["id"], []),
                    self._settings.max_payload_bytes,
                    owners.get(p["owner_id"]) if p["owner_id"] else None,
                    audience={"id": str(audience.id), "name": audience.name},
                )
                messages.append(
                    outbox.NewMessage(
                        _uuid(p["site_id"]),
                        event_type,
                        data,
                        lead_id=_uuid(p["id"]),
                        request_ids=request_ids.get(p["id"], ()),
                    )
                )
        await outbox.enqueue(conn, messages, now)


async def _audiences_and_members(
    conn: AsyncConnection, site_ids: set[uuid.UUID], lead_ids: list[uuid.UUID]
) -> tuple[list[CompiledAudience], set[tuple[uuid.UUID, uuid.UUID]]]:
    """The sites' audiences, and which of these leads are in which (a left join: an audience
    with none of them comes once, with no lead)."""
    a, m = _audiences, _members
    rows = await conn.execute(
        select(a.c.id, a.c.site_id, a.c.name, a.c.filters, a.c.version, m.c.lead_id)
        .select_from(a.outerjoin(m, and_(m.c.audience_id == a.c.id, m.c.lead_id.in_(lead_ids))))
        .where(a.c.site_id.in_(site_ids))
    )
    audiences: dict[uuid.UUID, CompiledAudience] = {}
    current = set()
    for row in rows:
        if row.id not in audiences:
            audiences[row.id] = compiled(row)
        if row.lead_id is not None:
            current.add((row.id, row.lead_id))
    return list(audiences.values()), current


async def _memberships(
    conn: AsyncConnection, audience_ids: list[uuid.UUID], lead_ids: list[uuid.UUID]
) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """Which of these leads are in which of these audiences (by `ix_audience_members_lead_id`)."""
    rows = await conn.execute(
        select(_members.c.audience_id, _members.c.lead_id).where(
            _members.c.lead_id.in_(lead_ids), _members.c.audience_id.in_(audience_ids)
        )
    )
    return {(a, lead) for a, lead in rows}
