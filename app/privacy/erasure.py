"""Erasing a person: every lead they are known by (across merges), with their events,
identities, contacts, timers, repair marks and webhook messages, in one transaction, and the
suppression of every identifier they were known by, so that ingestion drops their later
events (app.domain.privacy).

Lock order (docs/architecture.md): the person's leads in id order, `FOR UPDATE` on PostgreSQL,
then what hangs off them. An ingestion group that holds one of those leads (its lookup locks
them `FOR NO KEY UPDATE`) commits first, and its events are then erased with the rest; a group
that comes after waits for the erasure, finds the leads gone, starts over (RetryGroup) and then
sees the suppressions. SQLite has one writer: the two take turns.
"""

import secrets
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, cast

from sqlalchemy import Table, delete, func, or_, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.domain import lead_writes
from app.domain.privacy import (
    PrivacySalt,
    Suppression,
    identifier_hash,
    normalize_email,
)
from app.domain.tables import Event, Lead, LeadIdentity
from app.ingestion.repairs import LeadRepair
from app.webhooks.models import LeadContact, LeadTimer, WebhookMessage

# A merge that lands between finding the person's leads and locking them adds a lead: looked
# for again after each lock, a few times at most (merges of one person are rare).
MAX_ROUNDS = 5


@dataclass
class Erased:
    leads: int = 0
    events: int = 0
    identities: int = 0
    contacts: int = 0
    timers: int = 0
    webhook_messages: int = 0
    repairs: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class Erasure:
    erased: Erased
    suppressed_identifiers: int  # newly suppressed (0 when all already were)


async def erase_person(
    session: AsyncSession,
    site_id: uuid.UUID,
    *,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    email: str | None = None,
) -> Erasure:
    """Erase the person (or people) these identifiers name, in the session's transaction
    (the caller commits), and suppress every identifier they were known by. Identifiers that
    name nobody are suppressed all the same (an objection before any tracking, or a second
    call): the answer then counts nothing erased."""
    requested: set[tuple[str, str]] = set()
    if user_id:
        requested.add(("user", user_id))
    if anonymous_id:
        requested.add(("anonymous", anonymous_id))
    normalized = normalize_email(email)
    if normalized:
        requested.add(("email", normalized))

    postgres = session.get_bind().dialect.name == "postgresql"
    leads = await _person(session, site_id, await _seeds(session, site_id, requested))
    locked: set[uuid.UUID] = set()
    for _ in range(MAX_ROUNDS):
        if postgres and leads - locked:
            await session.execute(
                select(Lead.id)
                .where(Lead.id.in_(sorted(leads - locked)))
                .order_by(Lead.id)
                .with_for_update()
            )
            locked |= leads
        again = await _person(session, site_id, leads)
        if again == leads:
            break
        leads = again

    identifiers = requested | await _identifiers(session, site_id, leads)
    suppressed = await _suppress(session, site_id, identifiers)
    return Erasure(await _delete(session, site_id, sorted(leads)), suppressed)


async def _seeds(
    session: AsyncSession, site_id: uuid.UUID, requested: set[tuple[str, str]]
) -> set[uuid.UUID]:
    """The leads the identifiers name: by identity, and by email in a lead's contacts or
    traits (a scan of the site's leads: erasure is rare, an index for it would cost every
    ingestion write)."""
    seeds: set[uuid.UUID] = set()
    ids = [(kind, value) for kind, value in requested if kind != "email"]
    if ids:
        seeds.update(
            await session.scalars(
                select(LeadIdentity.lead_id).where(
                    LeadIdentity.site_id == site_id,
                    tuple_(LeadIdentity.kind, LeadIdentity.value).in_(ids),
                )
            )
        )
    emails = [value for kind, value in requested if kind == "email"]
    if emails:
        seeds.update(
            await session.scalars(
                select(Lead.id).where(
                    Lead.site_id == site_id,
                    or_(
                        func.lower(Lead.contacts["email"].as_string()).in_(emails),
                        func.lower(Lead.traits["email"].as_string()).in_(emails),
                    ),
                )
            )
        )
    return seeds


async def _person(
    session: AsyncSession, site_id: uuid.UUID, seeds: Iterable[uuid.UUID]
) -> set[uuid.UUID]:
    """The seeds with every lead merged into them and every lead they were merged into,
    transitively: the whole person across merges."""
    found = set(seeds)
    frontier = set(found)
    while frontier:
        rows = await session.execute(
            select(Lead.id, Lead.merged_into_id).where(
                Lead.site_id == site_id,
                or_(Lead.id.in_(frontier), Lead.merged_into_id.in_(frontier)),
            )
        )
        reached = {i for row in rows for i in row if i is not None}
        frontier = reached - found
        found |= reached
    # Rows may have gone (erased concurrently): only those that exist.
    if not found:
        return found
    return set(await session.scalars(select(Lead.id).where(Lead.id.in_(found))))


async def _identifiers(
    session: AsyncSession, site_id: uuid.UUID, leads: set[uuid.UUID]
) -> set[tuple[str, str]]:
    """Every identifier the leads are known by: identities, user ids and emails."""
    if not leads:
        return set()
    ids = sorted(leads)
    found: set[tuple[str, str]] = set(
        (kind, value)
        for kind, value in await session.execute(
            select(LeadIdentity.kind, LeadIdentity.value).where(LeadIdentity.lead_id.in_(ids))
        )
    )
    rows = await session.execute(
        select(Lead.user_id, Lead.contacts, Lead.traits).where(Lead.id.in_(ids))
    )
    for user_id, contacts, traits in rows:
        if user_id:
            found.add(("user", user_id))
        for source in (contacts, traits):
            email = normalize_email((source or {}).get("email"))
            if email:
                found.add(("email", email))
    return found


async def _salt(session: AsyncSession, site_id: uuid.UUID) -> bytes:
    salt = await session.scalar(select(PrivacySalt.salt).where(PrivacySalt.site_id == site_id))
    if salt is not None:
        return bytes(salt)
    insert = _insert(session)
    await session.execute(
        insert(_salts)
        .values(site_id=site_id, salt=secrets.token_bytes(32), created_at=utcnow())
        .on_conflict_do_nothing(index_elements=[_salts.c.site_id])
    )
    # A concurrent first erasure of the site may have won: its salt is the one.
    salt = await session.scalar(select(PrivacySalt.salt).where(PrivacySalt.site_id == site_id))
    return bytes(cast(bytes, salt))


async def _suppress(
    session: AsyncSession, site_id: uuid.UUID, identifiers: set[tuple[str, str]]
) -> int:
    """Record the identifiers' hashes; answers how many were not recorded yet."""
    if not identifiers:
        return 0
    salt = await _salt(session, site_id)
    now = utcnow()
    rows = [
        {"site_id": site_id, "hash": identifier_hash(salt, kind, value), "created_at": now}
        for kind, value in sorted(identifiers)
    ]
    insert = _insert(session)
    result = await session.execute(
        insert(_suppressions)
        .on_conflict_do_nothing(index_elements=[_suppressions.c.site_id, _suppressions.c.hash])
        .returning(_suppressions.c.id),
        rows,
    )
    return len(result.all())


async def _delete(session: AsyncSession, site_id: uuid.UUID, ids: list[uuid.UUID]) -> Erased:
    erased = Erased()
    if not ids:
        return erased

    async def remove(table: Any, *where: Any) -> int:
        result = await session.execute(delete(table).where(*where))
        return int(cast(Any, result).rowcount or 0)

    erased.events = await remove(_events, _events.c.site_id == site_id, _events.c.lead_id.in_(ids))
    # Delivered messages too: their payloads carry the lead. Deliveries and their attempt log
    # go with them (foreign keys, ON DELETE CASCADE).
    messages = cast(Table, WebhookMessage.__table__)
    erased.webhook_messages = await remove(
        messages, messages.c.site_id == site_id, messages.c.lead_id.in_(ids)
    )
    timers = cast(Table, LeadTimer.__table__)
    erased.timers = await remove(timers, timers.c.lead_id.in_(ids))
    contacts = cast(Table, LeadContact.__table__)
    erased.contacts = await remove(contacts, contacts.c.lead_id.in_(ids))
    repairs = cast(Table, LeadRepair.__table__)
    erased.repairs = await remove(repairs, repairs.c.lead_id.in_(ids))
    identities = cast(Table, LeadIdentity.__table__)
    erased.identities = await remove(identities, identities.c.lead_id.in_(ids))
    erased.leads = await lead_writes.delete_leads(session, ids)
    return erased


_events = cast(Table, Event.__table__)
_salts = cast(Table, PrivacySalt.__table__)
_suppressions = cast(Table, Suppression.__table__)


def _insert(session: AsyncSession) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
