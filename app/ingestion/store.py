"""Storing a group of events in one transaction: identities, leads, events and profiles.

Many requests' events go through here together (group commit, see `pipeline.py`). The work
per group is a fixed number of statements, whatever the number of events:
1. look up every anonymousId/userId/previousId and every (site, messageId) at once: the
   identities' leads, locked in id order (no deadlocks between replicas), and the events
   already stored (duplicates: clients retry); one statement on PostgreSQL;
2. resolve the new events to leads, merging leads that turn out to be one person;
3. fold the new events into the lead profiles and scores, in event time order (a lead that
   receives an event older than its last one is rebuilt from its stored events instead: one
   more statement for each such lead, rare);
4. write new leads, new identities, the events and the changed leads (on PostgreSQL one
   statement, with COPY before it for many rows).
A concurrent transaction that created one of our identities or stored one of our events
meanwhile makes the group start over (RetryGroup), and it then sees what that one did.
"""

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import utcnow
from app.domain import lead_writes
from app.domain import profile as lead_profile
from app.domain.changes import AfterGroup, LeadChange, Scorer
from app.domain.events import IngestEvent
from app.domain.lead_rows import LeadRow
from app.domain.privacy import event_identifiers
from app.domain.tables import Event, LeadIdentity
from app.ingestion.bulk import Bulk, Found, RetryGroup, bulk_for
from app.ingestion.history import rebuild_profile, stored_events
from app.ingestion.identities import Identities
from app.ingestion.repairs import RepairMark

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
BOT = "bot"
# An event carrying an erased person's identifier (a suppression): answered as accepted, so
# the client does not retry it, but not stored (app.domain.privacy).
SUPPRESSED = "suppressed"

logger = logging.getLogger(__name__)


@dataclass
class Submission:
    """One request's events, and what became of each."""

    site_id: uuid.UUID
    events: list[IngestEvent]
    outcomes: list[str] = field(default_factory=list)
    request_id: str | None = None  # the HTTP request's (app.logs), for logs and the outbox


async def store_group(
    conn: AsyncConnection,
    submissions: Sequence[Submission],
    *,
    visit_timeout: timedelta,
    store_bots: bool,
    scorer: Scorer | None = None,
    after_group: Sequence[AfterGroup] = (),
    fold: bool = True,
) -> list[RepairMark]:
    """Store every submission's events in the caller's transaction, filling in outcomes.

    A lead whose fold fails (a bug on odd input) does not hold up the others: its events are
    stored, its row is left as it was, and it is marked for repair. With `fold=False` (the
    fallback when the group failed after validation), nothing downstream runs at all: the
    events are stored with their leads (new ones blank) and every lead is marked. Answers
    the marks written."""
    now = utcnow()
    bulk = bulk_for(conn)
    fresh, found = await _fresh_events(bulk, submissions)
    identities = Identities()
    identities.load(found.identities)
    for sub, _, event in fresh:
        if not event.is_bot:
            event.lead_id = identities.resolve(sub.site_id, event)
    for _, _, event in fresh:
        if event.lead_id is not None:
            event.lead_id = identities.find(event.lead_id)

    profiles = _locked_leads(found, identities)
    before = {lead_id: (p["temperature"], bool(p["identified"])) for lead_id, p in profiles.items()}
    new_leads = [lead for lead in identities.new_leads if identities.find(lead) == lead]
    new_set = set(new_leads)
    for lead_id in new_leads:
        profiles[lead_id] = lead_profile.new_profile(lead_id, identities.new_leads[lead_id], now)
    merges = identities.merges()
    survivors = {s for _, s in merges}
    with_lead = [e for _, _, e in fresh if e.lead_id is not None]
    failed: dict[uuid.UUID, str] = {}  # lead -> what went wrong
    if not fold:
        failed = {e.lead_id: "" for e in with_lead if e.lead_id is not None}
    elif scorer is not None:
        await scorer.prepare(conn, {sub.site_id for sub in submissions})

    def apply(events: list[IngestEvent]) -> None:
        if fold:
            failed.update(_fold(events, profiles, visit_timeout, scorer, now))

    for loser, survivor in merges if fold else ():
        lead_profile.merge_profiles(profiles[survivor], profiles[loser])
    # A lead first seen in this group has no stored history: its events are folded in now,
    # unless stored leads merge into it (it then has their history: see the re-scoring).
    fold_now = new_set - survivors
    apply([e for e in with_lead if e.lead_id in fold_now])
    if scorer is not None and fold:
        scorer.finish((profiles[i] for i in fold_now if i not in failed), now)
    for lead_id in new_set.intersection(failed):  # written as new, without what failed
        profiles[lead_id] = lead_profile.new_profile(lead_id, identities.new_leads[lead_id], now)
    new_rows = [profiles[lead_id] for lead_id in new_leads]
    if merges and new_rows:
        # A stored lead may merge into one first seen in this group, which must then exist
        # before the merge points rows at it (foreign keys); what changes in it afterwards is
        # written as an update. Rare: other groups write their new leads with everything else
        # below, in one statement.
        await bulk.write(leads=new_rows, identities=[], events=[], updates=[])
        new_rows = []
    await _merge_in_database(conn, merges)
    stored_leads = [e for e in with_lead if e.lead_id not in fold_now]
    late = _late_leads(stored_leads, profiles) if fold else set()
    if scorer is not None and fold:
        # Replayed from stored history (a survivor's includes the leads merged into it), so
        # before this group's events are stored or applied.
        replayed = [p for lead_id, p in profiles.items() if lead_id not in fold_now]
        await scorer.rescore_stale(conn, replayed, force=survivors)
    if late:
        rebuild_failed, pruned = await _rebuild(
            conn, late, stored_leads, profiles, visit_timeout, scorer
        )
        failed.update(rebuild_failed)
        late -= pruned  # their events are folded in as they come, below
    apply([e for e in stored_leads if e.lead_id not in late])

    identity_rows = identities.rows(now)
    to_store = [(sub, e) for sub, _, e in fresh if store_bots or not e.is_bot]
    touched = {e.lead_id for e in with_lead if e.lead_id is not None} | survivors
    updated = [profiles[lead_id] for lead_id in sorted(touched - fold_now - failed.keys(), key=str)]
    for profile in updated:
        profile["updated_at"] = now
    if scorer is not None and fold:
        scorer.finish(updated, now)
    inserted = await bulk.write(
        leads=new_rows,
        identities=identity_rows,
        events=[_event_row(sub.site_id, e) for sub, e in to_store],
        updates=updated,
    )
    if inserted != len(identity_rows):
        raise RetryGroup("an identity was created concurrently")
    marks = _marks(fresh, failed, before, new_set)
    if after_group and fold:
        stored = [(sub, e) for sub, e in to_store if e.lead_id not in failed]
        changes = _changes(profiles, before, stored, new_set)
        for consumer in after_group:
            await consumer(conn, changes)
    return marks


async def _fresh_events(
    bulk: Bulk, submissions: Sequence[Submission]
) -> tuple[list[tuple[Submission, int, IngestEvent]], Found]:
    """The submissions' events not stored yet (outcomes filled in for the others), and what
    the lookup found: their identities' leads, locked."""
    candidates: list[tuple[Submission, int, IngestEvent]] = []
    seen: set[tuple[uuid.UUID, str]] = set()
    for sub in submissions:
        sub.outcomes = [ACCEPTED] * len(sub.events)
        for i, event in enumerate(sub.events):
            event.lead_id = None  # a retried group starts over
            key = (sub.site_id, event.message_id)
            if key in seen:
                sub.outcomes[i] = DUPLICATE
                continue
            seen.add(key)
            if event.is_bot:
                sub.outcomes[i] = BOT
            candidates.append((sub, i, event))

    keys: set[tuple[uuid.UUID, str, str]] = set()
    for sub, _, event in candidates:
        if not event.is_bot:
            keys.update(
                event_identifiers(
                    sub.site_id, event.user_id, event.anonymous_id, event.previous_id, event.traits
                )
            )
    stored_keys = [(sub.site_id, e.message_id) for sub, _, e in candidates]
    found = await bulk.lookup(sorted(keys), stored_keys)
    fresh = []
    for sub, i, event in candidates:
        if (sub.site_id, event.message_id) in found.events:
            sub.outcomes[i] = DUPLICATE
        elif found.suppressed and _suppressed(sub.site_id, event, found.suppressed):
            sub.outcomes[i] = SUPPRESSED
        else:
            fresh.append((sub, i, event))
    return fresh, found


def _suppressed(
    site_id: uuid.UUID, event: IngestEvent, suppressed: set[tuple[uuid.UUID, str, str]]
) -> bool:
    if event.is_bot:  # crawlers' events are never a person's (and never attached to a lead)
        return False
    ids = event_identifiers(
        site_id, event.user_id, event.anonymous_id, event.previous_id, event.traits
    )
    return any(key in suppressed for key in ids)


def _fold(
    events: list[IngestEvent],
    profiles: dict[uuid.UUID, LeadRow],
    visit_timeout: timedelta,
    scorer: Scorer | None,
    now: datetime,
) -> dict[uuid.UUID, str]:
    """Fold the events into their leads' profiles and scores, each lead's in time order;
    answers the leads whose fold raised, with the error (logged; their profiles are then not
    to be used)."""
    by_lead: dict[uuid.UUID, list[IngestEvent]] = {}
    for event in sorted(events, key=_by_time):
        by_lead.setdefault(event.lead_id, []).append(event)  # type: ignore[arg-type]
    failed: dict[uuid.UUID, str] = {}
    for lead_id, lead_events in by_lead.items():
        profile = profiles[lead_id]
        try:
            for event in lead_events:
                lead_profile.apply_event(profile, event, visit_timeout)
                if scorer is not None:
                    scorer.apply(profile, event, now)
        except Exception as exc:
            logger.exception("folding events into lead %s failed; marked for repair", lead_id)
            failed[lead_id] = repr(exc)
    return failed


def _late_leads(events: list[IngestEvent], profiles: dict[uuid.UUID, LeadRow]) -> set[uuid.UUID]:
    """The leads that receive an event older than their last one (a second device, a batch
    retried late). Folded in, it would not count as a replay counts it: its visit number (the
    return-visit rule), the time between events, which traits and products viewed are newest,
    a cart emptied by a later order. Such leads are rebuilt from their history instead."""
    late = set()
    for event in events:
        last_seen = profiles[event.lead_id]["last_seen_at"]  # type: ignore[index]
        if last_seen is not None and event.timestamp < last_seen:
            late.add(event.lead_id)
    return late  # type: ignore[return-value]


async def _rebuild(
    conn: AsyncConnection,
    lead_ids: set[uuid.UUID],
    events: list[IngestEvent],
    profiles: dict[uuid.UUID, LeadRow],
    visit_timeout: timedelta,
    scorer: Scorer | None,
) -> tuple[dict[uuid.UUID, str], set[uuid.UUID]]:
    """Rebuild the leads' profiles and scores from their stored events and the group's, with
    the repair job's fold and re-scoring's replay; answers the leads whose rebuild raised (their
    profiles are left as they were, not to be used), and the leads not rebuilt because
    retention pruned part of their history (fewer events stored than the lead has folded in):
    a rebuild would forget the pruned events' visits, orders and points, so the late events
    are folded into the lead as it is instead."""
    failed: dict[uuid.UUID, str] = {}
    pruned: set[uuid.UUID] = set()
    for lead_id in sorted(lead_ids, key=str):
        history = await stored_events(conn, lead_id)
        if len(history) < profiles[lead_id]["events_count"]:
            pruned.add(lead_id)
            continue
        # Stable: the group's events come after stored ones of the same time, as their ids do.
        ordered = sorted(history + [e for e in events if e.lead_id == lead_id], key=_by_time)
        try:
            profile = rebuild_profile(profiles[lead_id], ordered, visit_timeout)
            if scorer is not None:
                scorer.replay(profile, ordered)
        except Exception as exc:
            logger.exception("rebuilding lead %s failed; marked for repair", lead_id)
            failed[lead_id] = repr(exc)
            continue
        profiles[lead_id] = profile
    return failed, pruned


def _marks(
    fresh: list[tuple[Submission, int, IngestEvent]],
    failed: dict[uuid.UUID, str],
    before: dict[uuid.UUID, tuple[str, bool]],
    new_leads: set[uuid.UUID],
) -> list[RepairMark]:
    if not failed:
        return []
    since: dict[uuid.UUID, tuple[uuid.UUID, datetime]] = {}
    for sub, _, event in fresh:
        lead_id = event.lead_id
        if lead_id in failed and lead_id is not None:
            earliest = since.get(lead_id, (sub.site_id, event.received_at))[1]
            since[lead_id] = (sub.site_id, min(earliest, event.received_at))
    marks = []
    for lead_id, (site_id, at) in since.items():
        temperature, identified = before.get(lead_id, (None, False))
        new = lead_id in new_leads
        marks.append(
            RepairMark(
                lead_id, site_id, at, None if new else temperature, identified, failed[lead_id]
            )
        )
    return marks


def _by_time(event: IngestEvent) -> datetime:
    return event.timestamp


def _changes(
    profiles: dict[uuid.UUID, LeadRow],
    before: dict[uuid.UUID, tuple[str, bool]],
    stored: list[tuple[Submission, IngestEvent]],
    new_leads: set[uuid.UUID],
) -> list[LeadChange]:
    by_lead: dict[uuid.UUID, list[IngestEvent]] = {}
    requests: dict[uuid.UUID, dict[str, None]] = {}  # a lead's requests, ordered, once each
    for sub, event in stored:
        if event.lead_id is not None:
            by_lead.setdefault(event.lead_id, []).append(event)
            if sub.request_id is not None:
                requests.setdefault(event.lead_id, {})[sub.request_id] = None
    changes = []
    for lead_id, lead_events in by_lead.items():
        profile = profiles[lead_id]
        temperature, identified = before.get(lead_id, (None, False))
        changes.append(
            LeadChange(
                profile=profile,
                previous_temperature=None if lead_id in new_leads else temperature,
                previously_identified=identified,
                events=tuple(sorted(lead_events, key=_by_time)),
                request_ids=tuple(requests.get(lead_id, ())),
            )
        )
    return changes


def _locked_leads(found: Found, identities: Identities) -> dict[uuid.UUID, LeadRow]:
    """The group's existing leads, as locked by the lookup."""
    profiles: dict[uuid.UUID, LeadRow] = {}
    for row in found.leads:
        if row["merged_into_id"] is not None:
            # A concurrent group merged this lead after we read its identities.
            raise RetryGroup(f"lead {row['id']} was merged meanwhile")
        profiles[row["id"]] = row
    if len(profiles) != len(identities.existing):
        raise RetryGroup("a lead vanished meanwhile")
    return profiles


async def _merge_in_database(
    conn: AsyncConnection, merges: list[tuple[uuid.UUID, uuid.UUID]]
) -> None:
    """Point the merged leads' identities and events at the survivor (rare: Core is fine)."""
    idents = cast(Table, LeadIdentity.__table__)
    events = cast(Table, Event.__table__)
    for loser, survivor in merges:
        await conn.execute(update(idents).where(idents.c.lead_id == loser).values(lead_id=survivor))
        await conn.execute(update(events).where(events.c.lead_id == loser).values(lead_id=survivor))
        await lead_writes.mark_merged(conn, loser, survivor)


def _event_row(site_id: uuid.UUID, e: IngestEvent) -> dict[str, Any]:
    return {
        "site_id": site_id,
        "message_id": e.message_id,
        "lead_id": e.lead_id,
        "type": e.type,
        "name": e.name,
        "anonymous_id": e.anonymous_id,
        "user_id": e.user_id,
        "previous_id": e.previous_id,
        "timestamp": e.timestamp,
        "original_timestamp": e.original_timestamp,
        "sent_at": e.sent_at,
        "received_at": e.received_at,
        "is_bot": e.is_bot,
        "properties": e.properties,
        "traits": e.traits,
        "context": e.context,
    }
