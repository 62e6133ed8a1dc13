"""The audiences API (admins): saved audiences, their counts, members by cursor, and the CSV
of members with their contacts. Another site's audience is a 404."""

import base64
import csv
import io
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Annotated, Any, cast

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import Row, Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import StreamingResponse

from app import wakeups
from app.audiences.models import MEMBERSHIP_JOBS, Audience, AudienceMember
from app.audiences.schemas import (
    AudienceIn,
    AudienceList,
    AudienceMemberPage,
    AudienceOut,
    AudienceUpdate,
)
from app.db import SessionDep, utcnow
from app.domain.tables import Lead
from app.errors import AppError, Conflict, NotFound
from app.openapi import BODY, SECRET_KEY_ERRORS, errors
from app.params import Text
from app.sites.dependencies import SecretSiteDep

router = APIRouter(prefix="/v1/audiences", tags=["audiences"], responses=errors(*SECRET_KEY_ERRORS))
# The CSV export: its errors are documented by the route itself, as JSON.
csv_router = APIRouter(prefix="/v1/audiences", tags=["audiences"])

# Every audience is evaluated for each lead an event changes: their number bounds that cost.
MAX_AUDIENCES_PER_SITE = 50
CSV_PAGE = 1000
_members = cast(Table, AudienceMember.__table__)
_leads = cast(Table, Lead.__table__)


class InvalidCursor(AppError):
    status_code = 400
    code = "invalid_cursor"


class CSVResponse(StreamingResponse):
    media_type = "text/csv"


async def _counts(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Live members of each audience (merged leads left out), one grouped query."""
    if not ids:
        return {}
    rows = await session.execute(
        select(_members.c.audience_id, func.count())
        .join(_leads, _leads.c.id == _members.c.lead_id)
        .where(_members.c.audience_id.in_(ids), _leads.c.merged_into_id.is_(None))
        .group_by(_members.c.audience_id)
    )
    return {audience_id: n for audience_id, n in rows}


def _out(audience: Audience, members: int) -> dict[str, Any]:
    return {
        "id": audience.id,
        "name": audience.name,
        "filters": audience.filters,
        "state": audience.state,
        "members": members,
        "created_at": audience.created_at,
        "updated_at": audience.updated_at,
    }


async def _audience(session: AsyncSession, site_id: uuid.UUID, audience_id: uuid.UUID) -> Audience:
    audience = await session.get(Audience, audience_id)
    if audience is None or audience.site_id != site_id:
        raise NotFound(f"No audience {audience_id}.")
    return audience


async def _name_free(
    session: AsyncSession, site_id: uuid.UUID, name: str, but: uuid.UUID | None = None
) -> None:
    query = select(Audience.id).where(Audience.site_id == site_id, Audience.name == name)
    if but is not None:
        query = query.where(Audience.id != but)
    if await session.scalar(query) is not None:
        raise Conflict(f"This site already has an audience named {name!r}.", code="name_taken")


def filters_json(filters: Any) -> dict[str, Any]:
    """The filters as saved: only those given."""
    saved: dict[str, Any] = filters.model_dump(mode="json", exclude_none=True)
    return saved


async def add_audience(
    session: AsyncSession, site_id: uuid.UUID, body: AudienceIn, now: datetime
) -> Audience:
    """A new audience; its members are computed by the background job (`state` computing)."""
    await _name_free(session, site_id, body.name)
    audience = Audience(
        site_id=site_id,
        name=body.name,
        filters=filters_json(body.filters),
        created_at=now,
        updated_at=now,
        version=1,
        state="computing",
        job_notifies=False,
    )
    session.add(audience)
    await session.flush()
    await wakeups.notify(await session.connection(), MEMBERSHIP_JOBS, others=True)
    return audience


@router.post("", status_code=201, response_model=AudienceOut, responses=errors(BODY, 409))
async def create_audience(body: AudienceIn, site: SecretSiteDep, session: SessionDep) -> dict:
    """Save an audience. Its members are computed in the background (`state: computing`);
    from then on leads enter and leave as their events, decay and time move them, each sent
    as `audience.entered` / `audience.left`. 409 `name_taken`, `too_many_audiences`."""
    count = await session.scalar(select(func.count()).where(Audience.site_id == site.id))
    if (count or 0) >= MAX_AUDIENCES_PER_SITE:
        raise Conflict(
            f"A site has at most {MAX_AUDIENCES_PER_SITE} audiences: delete one first.",
            code="too_many_audiences",
        )
    audience = await add_audience(session, site.id, body, utcnow())
    return _out(audience, 0)


@router.get("", response_model=AudienceList)
async def list_audiences(site: SecretSiteDep, session: SessionDep) -> dict:
    """The site's audiences, by name, with how many leads each has now."""
    audiences = (
        await session.scalars(
            select(Audience).where(Audience.site_id == site.id).order_by(Audience.name)
        )
    ).all()
    counts = await _counts(session, [a.id for a in audiences])
    return {"data": [_out(a, counts.get(a.id, 0)) for a in audiences]}


@router.get("/{audience_id}", response_model=AudienceOut, responses=errors(404))
async def get_audience(audience_id: uuid.UUID, site: SecretSiteDep, session: SessionDep) -> dict:
    """One audience and its count."""
    audience = await _audience(session, site.id, audience_id)
    return _out(audience, (await _counts(session, [audience.id])).get(audience.id, 0))


@router.patch("/{audience_id}", response_model=AudienceOut, responses=errors(BODY, 404, 409))
async def update_audience(
    audience_id: uuid.UUID, body: AudienceUpdate, site: SecretSiteDep, session: SessionDep
) -> dict:
    """Rename an audience or change its filters: new filters are applied by the background
    job (`state: computing`), and the leads it moves in or out are sent as webhooks."""
    audience = await _audience(session, site.id, audience_id)
    now = utcnow()
    if body.name is not None and body.name != audience.name:
        await _name_free(session, site.id, body.name, but=audience.id)
        audience.name = body.name
    if body.filters is not None:
        filters = filters_json(body.filters)
        if filters != audience.filters:
            audience.filters = filters
            audience.state = "computing"
            audience.computed_after = None
            audience.job_lease_until = None
            audience.job_notifies = True
    # Any change (a new name is in the payloads too) is a new version: a running job stops
    # and is taken up again at once (its lease cleared), from where it was.
    audience.version += 1
    audience.job_lease_until = None
    audience.updated_at = now
    await session.flush()
    if audience.state == "computing":  # the job starts (or takes it up again) at once
        await wakeups.notify(await session.connection(), MEMBERSHIP_JOBS, others=True)
    return _out(audience, (await _counts(session, [audience.id])).get(audience.id, 0))


@router.delete("/{audience_id}", status_code=204, responses=errors(404))
async def delete_audience(
    audience_id: uuid.UUID, site: SecretSiteDep, session: SessionDep
) -> Response:
    """Delete an audience and its membership (nothing is sent)."""
    audience = await _audience(session, site.id, audience_id)
    await session.delete(audience)
    return Response(status_code=204)


def _encode(lead_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(lead_id.bytes).decode().rstrip("=")


def _decode(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        raise InvalidCursor(
            "The cursor is not valid: pass next_cursor from a previous page unchanged."
        ) from None


def _members_query(audience_id: uuid.UUID, after: uuid.UUID | None, limit: int) -> Any:
    """Live members by lead id (the membership key's order), after a lead id."""
    query = (
        select(_members.c.entered_at, _leads)
        .join(_leads, _leads.c.id == _members.c.lead_id)
        .where(_members.c.audience_id == audience_id, _leads.c.merged_into_id.is_(None))
    )
    if after is not None:
        query = query.where(_members.c.lead_id > after)
    return query.order_by(_members.c.lead_id).limit(limit)


def _top_interests(interests: dict[str, Any] | None) -> list[str]:
    ranked = sorted((interests or {}).items(), key=lambda item: (-item[1], item[0]))
    return [category for category, _ in ranked[:3]]


def _member(row: Row[Any]) -> dict[str, Any]:
    contacts, traits = row.contacts or {}, row.traits or {}
    name = traits.get("name") or " ".join(
        str(traits[k])
        for k in ("first_name", "firstName", "last_name", "lastName")
        if traits.get(k)
    )
    return {
        "lead_id": row.id,
        "entered_at": row.entered_at,
        "score": row.score,
        "temperature": row.temperature,
        "status": row.status,
        "identified": row.identified,
        "email": contacts.get("email"),
        "phone": contacts.get("phone"),
        "name": str(name)[:200] or None,
        "city": row.city,
        "country": row.country,
        "visits": row.visits,
        "orders": row.orders,
        "cart_value": float((row.cart or {}).get("value") or 0),
        "top_interests": _top_interests(row.interests),
        "last_seen_at": row.last_seen_at,
    }


@router.get("/{audience_id}/members", response_model=AudienceMemberPage, responses=errors(400, 404))
async def list_members(
    audience_id: uuid.UUID,
    site: SecretSiteDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[Text | None, Query(max_length=100)] = None,
) -> dict:
    """The audience's members with their contacts, one keyset page at a time."""
    audience = await _audience(session, site.id, audience_id)
    after = _decode(cursor) if cursor else None
    rows = (await session.execute(_members_query(audience.id, after, limit + 1))).all()
    page = rows[:limit]
    more = len(rows) > limit
    return {
        "data": [_member(r) for r in page],
        "next_cursor": _encode(page[-1].id) if more and page else None,
    }


CSV_COLUMNS = [
    "lead_id", "email", "phone", "name", "city", "country", "temperature", "score", "status",
    "visits", "orders", "cart_value", "top_interests", "last_seen_at", "entered_at",
]  # fmt: skip
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text: one that would start a formula (`=`, `+`, `-`, `@`,
    tab, carriage return: OWASP's CSV injection list) is prefixed with a quote."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        value = "; ".join(value)
    text = str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_START):
        return "'" + text
    return text


def _csv_lines(rows: list[dict[str, Any]], header: bool) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([safe_cell(row[c]) for c in CSV_COLUMNS])
    return out.getvalue()


def _json_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`errors(...)` for a route whose own answer is not JSON: its errors still are."""
    return {
        status: {
            "description": answer["description"],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        }
        for status, answer in errors(*statuses).items()
    }


@csv_router.get(
    "/{audience_id}/members.csv",
    response_class=CSVResponse,
    responses={
        200: {
            "description": "The members, one row each (UTF-8, RFC 4180), streamed",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **_json_errors(*SECRET_KEY_ERRORS, 404),
    },
)
async def export_members(
    audience_id: uuid.UUID, request: Request, site: SecretSiteDep, session: SessionDep
) -> CSVResponse:
    """The audience's members with their contacts as CSV, streamed in pages of a thousand (each
    page read in its own short transaction). Cells that a spreadsheet would take for a formula
    start with a `'`."""
    audience = await _audience(session, site.id, audience_id)
    sessionmaker = request.app.state.sessionmaker

    async def lines() -> AsyncIterator[str]:
        after: uuid.UUID | None = None
        first = True
        while True:
            async with sessionmaker() as reader:
                rows = (await reader.execute(_members_query(audience.id, after, CSV_PAGE))).all()
            yield _csv_lines([_member(r) for r in rows], header=first)
            first = False
            if len(rows) < CSV_PAGE:
                return
            after = rows[-1].id

    filename = f"audience-{audience.id}.csv"
    return CSVResponse(
        lines(), headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )
