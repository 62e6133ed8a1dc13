"""The one owner of every write to `leads`; reads stay with the domains.

- new leads and changed profiles, a group at a time: ingestion's group commit and the repair
  job (`insert_new`, `update_profiles`). On PostgreSQL ingestion sends a group's writes of
  every table as one statement (app.ingestion.bulk): its `leads` parts are `pg_insert_sql`
  and `pg_update_sql`, and many new leads go first by binary COPY (`pg_copy_new`);
- merges: a lead found to be another's (`mark_merged`);
- scores, after re-scoring or the temperature refresher (`write_scores`), and when a lead
  next needs the refresher's look (`set_next_checks`);
- when first contact is due, for leads that turned hot (`set_contact_by`);
- who owns leads that turned hot (`set_owners`, app.team.assignment), and leads the
  escalation ladder changed (`touch`);
- the sales team's columns: status, first contact and the owner (`patch_lead`);
- erasure: a person's leads deleted (`delete_leads`, app.privacy).
"""

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypedDict, cast

import asyncpg
from sqlalchemy import Table, bindparam, delete, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.db import UTCDateTime
from app.domain.lead_rows import LeadRow
from app.domain.tables import Lead
from app.recordsets import copy_rows, insert_sql, json_columns, pg_type, recordset, to_json

_leads = cast(Table, Lead.__table__)
LEAD_COLUMNS = tuple(c.name for c in _leads.columns)
# The owner is written only by `set_owners`: a whole-profile write (ingestion, repairs) never
# puts back an owner it read before a claim or a handover.
OWNER_COLUMNS = ("owner_id", "owner_assigned_at")
LEAD_UPDATABLE = tuple(
    c for c in LEAD_COLUMNS if c not in ("id", "site_id", "created_at", *OWNER_COLUMNS)
)
_LEAD_JSON = json_columns(_leads)


# --- new leads and changed profiles -----------------------------------------------------------


def pg_insert_sql(param: int) -> str:
    """PostgreSQL: insert the new leads of JSON recordset `$param` (every column)."""
    return insert_sql(_leads, LEAD_COLUMNS, param=param)


def pg_update_sql(param: int) -> str:
    """PostgreSQL: write the profiles of JSON recordset `$param` (every column but the ones a
    lead never changes) over their leads."""
    assignments = ", ".join(f"{c} = t.{c}" for c in LEAD_UPDATABLE)
    source = recordset(_leads, ("id", *LEAD_UPDATABLE), param=param)
    return f"UPDATE leads AS l SET {assignments} FROM {source} WHERE l.id = t.id"


async def pg_copy_new(raw: asyncpg.Connection, rows: Sequence[LeadRow]) -> None:
    """PostgreSQL: insert many new leads by binary COPY, in the caller's transaction."""
    await copy_rows(raw, "leads", rows, LEAD_COLUMNS, _LEAD_JSON)


async def insert_new(conn: AsyncConnection, rows: Sequence[LeadRow]) -> None:
    """Insert new leads (SQLAlchemy Core: SQLite, and anything not on ingestion's hot path)."""
    if rows:
        await conn.execute(insert(_leads), rows)


_UPDATE_PROFILE = (
    update(_leads)
    .where(_leads.c.id == bindparam("_id"))
    .values({c: bindparam(c) for c in LEAD_UPDATABLE})
)


async def update_profiles(conn: AsyncConnection, rows: Sequence[LeadRow]) -> None:
    """Write whole profiles over their leads, which the caller has locked (Core)."""
    if rows:
        values = cast(Sequence[Mapping[str, Any]], rows)
        await conn.execute(
            _UPDATE_PROFILE,
            [{"_id": r["id"], **{c: r[c] for c in LEAD_UPDATABLE}} for r in values],
        )


async def mark_merged(conn: AsyncConnection, loser: uuid.UUID, survivor: uuid.UUID) -> None:
    """`loser` (and the leads merged into it before) now points at `survivor`: the row stays,
    so that old ids still resolve."""
    await conn.execute(
        update(_leads)
        .where((_leads.c.merged_into_id == loser) | (_leads.c.id == loser))
        .values(merged_into_id=survivor)
    )


# --- scores -----------------------------------------------------------------------------------

# The columns a score writes, with their PostgreSQL types: both paths below are built from this
# one map, so what is written cannot drift between them (`updated_at` follows `scored_at`).
SCORE_COLUMNS: dict[str, str] = {
    name: pg_type(_leads.c[name])
    for name in (
        "score",
        "temperature",
        "score_state",
        "rule_set_version",
        "scored_at",
        "became_hot_at",
        "next_check_at",
    )
}
_PG_WRITE_SCORES = (
    "UPDATE leads SET "
    + ", ".join(f"{c} = r.{c}" for c in SCORE_COLUMNS)
    # A changed score is a changed lead for dashboards polling with updated_since / ETag.
    + ", updated_at = r.scored_at"
    + " FROM jsonb_to_recordset($1::jsonb) AS r(id uuid, "
    + ", ".join(f"{c} {t}" for c, t in SCORE_COLUMNS.items())
    + ") WHERE leads.id = r.id"
)
_WRITE_SCORES = (
    update(_leads)
    .where(_leads.c.id == bindparam("_id"))
    .values(
        {
            **{c: bindparam(f"_{c}", type_=_leads.c[c].type) for c in SCORE_COLUMNS},
            "updated_at": bindparam("_scored_at", type_=_leads.c.scored_at.type),
        }
    )
)


async def write_scores(conn: AsyncConnection, profiles: Sequence[LeadRow]) -> None:
    """Write the scoring columns of leads the caller has locked: on PostgreSQL one statement
    for them all (their rows as one JSON recordset), elsewhere one statement executed many
    times."""
    if not profiles:
        return
    rows = cast(Sequence[Mapping[str, Any]], profiles)
    if conn.dialect.name == "postgresql":
        raw = (await conn.get_raw_connection()).driver_connection
        if raw is None:
            raise RuntimeError("no asyncpg connection under this one")
        doc = to_json([{"id": r["id"], **{c: r[c] for c in SCORE_COLUMNS}} for r in rows])
        await raw.execute(_PG_WRITE_SCORES, doc)
        return
    await conn.execute(
        _WRITE_SCORES, [{"_id": r["id"], **{f"_{c}": r[c] for c in SCORE_COLUMNS}} for r in rows]
    )


async def set_next_checks(conn: AsyncConnection, profiles: Sequence[LeadRow]) -> None:
    """Write only when leads next need the refresher's look: nothing a dashboard shows
    changed, so `updated_at` (and the ETags and `updated_since` built on it) stays."""
    if profiles:
        await conn.execute(
            update(_leads)
            .where(_leads.c.id == bindparam("_id"))
            .values(next_check_at=bindparam("_next_check_at", type_=UTCDateTime())),
            [{"_id": p["id"], "_next_check_at": p["next_check_at"]} for p in profiles],
        )


# --- speed to lead and the sales funnel -------------------------------------------------------


async def set_contact_by(conn: AsyncConnection, profiles: Sequence[LeadRow]) -> None:
    """Write `contact_by` (when first contact is due) of leads that turned hot."""
    if profiles:
        await conn.execute(
            update(_leads)
            .where(_leads.c.id == bindparam("lead"))
            .values(contact_by=bindparam("due")),
            [{"lead": p["id"], "due": p["contact_by"]} for p in profiles],
        )


async def set_owners(conn: AsyncConnection, profiles: Sequence[LeadRow]) -> None:
    """Write the owner of leads that turned hot in this transaction (app.team.assignment)."""
    if profiles:
        await conn.execute(
            update(_leads)
            .where(_leads.c.id == bindparam("lead"))
            .values(
                owner_id=bindparam("owner", type_=_leads.c.owner_id.type),
                owner_assigned_at=bindparam("at", type_=UTCDateTime()),
            ),
            [
                {"lead": p["id"], "owner": p["owner_id"], "at": p["owner_assigned_at"]}
                for p in profiles
            ],
        )


async def touch(conn: AsyncConnection, lead_ids: Sequence[uuid.UUID], now: datetime) -> None:
    """Move `updated_at` of leads that changed in what the lists show without a column of
    their own changing here (the escalation ladder's handover after `set_owners`, its at-risk
    mark), so that dashboards polling with updated_since / ETag see it."""
    if lead_ids:
        await conn.execute(
            update(_leads).where(_leads.c.id.in_(list(lead_ids))).values(updated_at=now)
        )


class LeadPatch(TypedDict, total=False):
    """The sales team's columns a request may change (the funnel, first contact, the owner:
    a claim, a handover or an admin's reassignment)."""

    status: str
    status_changed_at: datetime
    lost_reason: str | None
    lost_note: str | None
    first_contacted_at: datetime
    owner_id: uuid.UUID | None
    owner_assigned_at: datetime | None


async def patch_lead(session: AsyncSession, lead: Lead, patch: LeadPatch, now: datetime) -> None:
    """Change a lead loaded (and locked) in the session; its `updated_at` moves to `now`, so
    that dashboards polling with updated_since / ETag see the change."""
    for column, value in patch.items():
        setattr(lead, column, value)
    lead.updated_at = now
    await session.flush()


# --- erasure ----------------------------------------------------------------------------------


async def delete_leads(conn: AsyncConnection | AsyncSession, lead_ids: Sequence[uuid.UUID]) -> int:
    """Delete the leads (locked by the caller); answers how many were. First their
    `first_seen_at` and `became_hot_at` are cleared, so that the funnel's and speed to lead's
    triggers (migrations 0011, 0022) write the -1 of each live lead in its day: their counts
    then no longer count an erased person, as their reads of the leads do not (there is no
    trigger on DELETE)."""
    if not lead_ids:
        return 0
    ids = list(lead_ids)
    await conn.execute(
        update(_leads).where(_leads.c.id.in_(ids)).values(first_seen_at=None, became_hot_at=None)
    )
    result = await conn.execute(delete(_leads).where(_leads.c.id.in_(ids)))
    return int(cast(Any, result).rowcount or 0)
