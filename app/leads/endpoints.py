"""The leads API, for anyone of the site (admin or manager): leads (`/v1/leads`: list, card,
status, recorded contacts, the owner: claim, handover, an admin's reassignment) and their
statistics over a period (`/v1/stats`: the funnel, speed to lead). Another site's lead is a
404, never a 403: its existence is not revealed."""

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.responses import Response

from app.db import SessionDep, utcnow
from app.domain import lead_writes
from app.domain import profile as lead_profile
from app.domain.tables import Lead
from app.errors import Conflict, Forbidden, NotFound, Unprocessable
from app.http import JSONResponse
from app.leads import contacts, service, stats
from app.leads.schemas import (
    STATUSES,
    TEMPERATURES,
    ContactIn,
    ContactOut,
    FunnelStats,
    Handover,
    LeadDetail,
    LeadPage,
    LeadUpdate,
    OwnerSet,
    Sort,
    SpeedToLead,
)
from app.openapi import BODY, SECRET_KEY_ERRORS, errors
from app.params import Text, UtcDateTime
from app.scoring import explain
from app.sites.dependencies import AdminDep, MemberSiteDep, PrincipalDep, UserPrincipalDep
from app.team import assignment, escalation
from app.team.models import User

router = APIRouter(prefix="/v1/leads", tags=["leads"], responses=errors(*SECRET_KEY_ERRORS))
stats_router = APIRouter(prefix="/v1/stats", tags=["leads"], responses=errors(*SECRET_KEY_ERRORS))

LIST_PARAMS = {
    "temperature",
    "status",
    "min_score",
    "interest",
    "city",
    "identified",
    "owner",
    "updated_since",
    "sort",
    "limit",
    "cursor",
}
PERIOD_DAYS = 30  # the stats' period when `from` is not given


def current_time() -> datetime:
    """The clock the card's score is evaluated at (tests override this dependency)."""
    return utcnow()


NowDep = Annotated[datetime, Depends(current_time)]


def _query_error(name: str, message: str) -> Unprocessable:
    return Unprocessable(
        message, details=[{"loc": ["query", name], "message": message, "type": "value_error"}]
    )


def _choices(name: str, raw: list[str] | None, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """A repeatable parameter that also takes a comma list: `?temperature=warm,hot`."""
    values = tuple(v.strip() for item in raw or () for v in item.split(",") if v.strip())
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise _query_error(name, f"Unknown {name} {', '.join(unknown)}: use {', '.join(allowed)}.")
    return values


def _owner_json(owner: assignment.Owner | None) -> dict[str, Any] | None:
    return owner.as_json() if owner is not None else None


def _at_risk(since: datetime | None) -> dict[str, Any] | None:
    return None if since is None else {"reason": escalation.AT_RISK_REASON, "since": since}


def _summary(
    lead: Lead, owners: dict[uuid.UUID, assignment.Owner], risks: dict[uuid.UUID, datetime]
) -> dict[str, Any]:
    cart = lead.cart or {}
    return {
        "id": str(lead.id),
        "score": lead.score,
        "temperature": lead.temperature,
        "status": lead.status,
        "lost_reason": lead.lost_reason,
        "identified": lead.identified,
        "contacts": lead.contacts or {},
        "city": lead.city,
        "country": lead.country,
        "top_interests": service.top_interests(lead.interests or {}),
        "last_seen_at": lead.last_seen_at,
        "last_url": lead.last_url,
        "visits": lead.visits,
        "time_on_site_seconds": lead_profile.time_on_site(service.as_profile(lead)),
        "cart": {"item_count": cart.get("item_count", 0), "value": cart.get("value", 0)},
        "became_hot_at": lead.became_hot_at,
        "contact_by": lead.contact_by,
        "first_contacted_at": lead.first_contacted_at,
        "updated_at": lead.updated_at,
        "rule_set_version": lead.rule_set_version,
        "owner": _owner_json(owners.get(lead.owner_id)) if lead.owner_id else None,
        "owner_assigned_at": lead.owner_assigned_at,
        "at_risk": _at_risk(risks.get(lead.id)),
    }


def _owner_filter(raw: str | None, principal: Any) -> str | None:
    """`owner=me` (the person asking), `owner=none` (unowned) or a person's id."""
    if raw is None or raw == "none":
        return raw
    if raw == "me":
        if principal.user is None:
            raise _query_error(
                "owner",
                "owner=me needs a person (a personal token or a sign-in), not the"
                " site's secret key: use owner=<user id>.",
            )
        return str(principal.user.id)
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise _query_error("owner", "owner is me, none or a person's id.") from None


@router.get(
    "",
    response_model=LeadPage,
    responses={304: {"description": "Page unchanged"}, **errors(400)},  # 400: a bad cursor
)
async def list_leads(
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    temperature: Annotated[list[Text] | None, Query(max_length=10)] = None,
    status: Annotated[list[Text] | None, Query(max_length=10)] = None,
    min_score: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    interest: Annotated[Text | None, Query(min_length=1, max_length=100)] = None,
    city: Annotated[Text | None, Query(min_length=1, max_length=200)] = None,
    identified: bool | None = None,
    owner: Annotated[
        Text | None,
        Query(
            max_length=40,
            description="`me` (needs a personal token or a sign-in), `none` or a person's id",
        ),
    ] = None,
    updated_since: UtcDateTime | None = None,
    sort: Sort = "score",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[Text | None, Query(max_length=500)] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Live leads (merged ones are not listed), hottest first or most recently seen first, one
    keyset page at a time. Send the page's ETag back as If-None-Match to poll for 304s."""
    unknown = sorted(set(request.query_params) - LIST_PARAMS)
    if unknown:
        raise _query_error(unknown[0], f"Unknown query parameter {unknown[0]}.")
    site = principal.site
    filters = service.LeadFilter(
        temperatures=_choices("temperature", temperature, TEMPERATURES),
        statuses=_choices("status", status, STATUSES),
        min_score=min_score,
        interest=interest,
        city=city,
        identified=identified,
        owner=_owner_filter(owner, principal),
        updated_since=updated_since,
    )
    keys = await service.page_keys(session, site.id, filters, sort, limit + 1, cursor)
    has_more = len(keys) > limit
    keys = keys[:limit]
    fingerprint = {**filters.fingerprint(), "sort": sort, "limit": limit, "cursor": cursor}
    etag = service.page_etag(fingerprint, keys, has_more)
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if service.etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    leads = await service.load_leads(session, [key.id for key in keys])
    owners = await assignment.owners(await session.connection(), (lead.owner_id for lead in leads))
    risks = await service.at_risk(session, leads)
    next_cursor = service.encode_cursor(sort, keys[-1]) if has_more else None
    page = LeadPage.model_validate(
        {"data": [_summary(lead, owners, risks) for lead in leads], "next_cursor": next_cursor}
    )
    return JSONResponse(page.model_dump(mode="json"), headers=headers)


async def _site_lead(
    session: SessionDep, site_id: uuid.UUID, lead_id: uuid.UUID, *, for_update: bool = False
) -> Lead:
    lead = await service.resolve_lead(session, site_id, lead_id, for_update=for_update)
    if lead is None:
        raise NotFound(f"No lead {lead_id}.")
    return lead


async def _card(request: Request, session: SessionDep, lead: Lead, now: datetime) -> dict:
    settings = request.app.state.settings
    visit_timeout = timedelta(minutes=settings.ingestion.visit_timeout_minutes)
    result = await service.score_now(session, lead, request.app.state.rule_sets, visit_timeout, now)
    profile = service.as_profile(lead)
    return {
        **profile,
        "merged_ids": await service.merged_ids(session, lead),
        "score": result.score,
        "temperature": result.temperature,
        "score_at_last_event": lead.score,
        "temperature_at_last_event": lead.temperature,
        "active_rule_set_version": result.rule_set_version,
        "rule_set_outdated": lead.rule_set_version not in (None, result.rule_set_version),
        "breakdown": [
            {
                **dataclasses.asdict(item),
                "message_ids": list(item.message_ids),
                "text": explain.sentence(item),
            }
            for item in result.breakdown
        ],
        "note": lead.lost_note,
        "time_on_site_seconds": lead_profile.time_on_site(profile),
        "timeline": await service.timeline(session, lead),
        "escalation": await service.escalation(session, lead),
        "at_risk": _at_risk((await service.at_risk(session, [lead])).get(lead.id)),
        "owner": _owner_json(
            (await assignment.owners(await session.connection(), [lead.owner_id])).get(
                lead.owner_id
            )
            if lead.owner_id
            else None
        ),
    }


@router.get("/{lead_id}", response_model=LeadDetail, responses=errors(404))
async def get_lead(
    lead_id: uuid.UUID, request: Request, site: MemberSiteDep, session: SessionDep, now: NowDep
) -> dict:
    """A lead's card. The id of a lead merged into another answers the surviving lead."""
    lead = await _site_lead(session, site.id, lead_id)
    return await _card(request, session, lead, now)


@router.patch("/{lead_id}", response_model=LeadDetail, responses=errors(BODY, 404, 409))
async def update_lead(
    lead_id: uuid.UUID,
    body: LeadUpdate,
    request: Request,
    site: MemberSiteDep,
    session: SessionDep,
    now: NowDep,
) -> dict:
    """Move a lead through the sales funnel, or mark it lost with a reason."""
    lead = await _site_lead(session, site.id, lead_id, for_update=True)
    patch = service.status_patch(lead, body.model_dump(exclude_unset=True), now)
    await lead_writes.patch_lead(session, lead, patch, now)
    return await _card(request, session, lead, now)


@router.post(
    "/{lead_id}/contacts", status_code=201, response_model=ContactOut, responses=errors(BODY, 404)
)
async def record_contact(
    lead_id: uuid.UUID, body: ContactIn, site: MemberSiteDep, session: SessionDep
) -> dict[str, object]:
    """Record a contact with the lead; the first one stops the speed-to-lead clock."""
    lead = await _site_lead(session, site.id, lead_id, for_update=True)
    contact = await contacts.record_contact(session, lead, body)
    waited = (
        (lead.first_contacted_at - lead.became_hot_at).total_seconds()
        if lead.first_contacted_at and lead.became_hot_at
        else None
    )
    return {
        "id": str(contact.id),
        "lead_id": str(lead.id),
        "channel": contact.channel,
        "by": contact.by,
        "note": contact.note,
        "at": contact.at,
        "first_contacted_at": lead.first_contacted_at,
        "seconds_to_first_contact": waited,
        "lead_status": lead.status,
    }


async def _new_owner(session: SessionDep, site_id: uuid.UUID, user_id: uuid.UUID) -> User:
    """An active person of the site, to own a lead (else 422: nobody to give it to)."""
    user = await session.get(User, user_id)
    if user is None or user.site_id != site_id or not user.active:
        message = "user_id is no active person of this site."
        raise Unprocessable(
            message,
            details=[{"loc": ["body", "user_id"], "message": message, "type": "value_error"}],
        )
    return user


async def _set_owner(
    request: Request, session: SessionDep, lead: Lead, owner_id: uuid.UUID | None, now: datetime
) -> dict:
    if lead.owner_id != owner_id:
        patch: lead_writes.LeadPatch = {
            "owner_id": owner_id,
            "owner_assigned_at": now if owner_id is not None else None,
        }
        await lead_writes.patch_lead(session, lead, patch, now)
    return await _card(request, session, lead, now)


@router.post("/{lead_id}/claim", response_model=LeadDetail, responses=errors(403, 404, 409))
async def claim_lead(
    lead_id: uuid.UUID,
    request: Request,
    principal: UserPrincipalDep,
    session: SessionDep,
    now: NowDep,
) -> dict:
    """Take an unowned lead (a person, not the secret key): 409 `lead_owned` if someone else
    owns it; claiming one's own lead again changes nothing."""
    assert principal.user is not None  # UserPrincipalDep
    lead = await _site_lead(session, principal.site.id, lead_id, for_update=True)
    if lead.owner_id not in (None, principal.user.id):
        raise Conflict("Someone else owns this lead: ask them or an admin.", code="lead_owned")
    return await _set_owner(request, session, lead, principal.user.id, now)


@router.post("/{lead_id}/handover", response_model=LeadDetail, responses=errors(BODY, 403, 404))
async def hand_over_lead(
    lead_id: uuid.UUID,
    body: Handover,
    request: Request,
    principal: UserPrincipalDep,
    session: SessionDep,
    now: NowDep,
) -> dict:
    """Give a lead to another active person of the site: its owner does (403 `not_owner` for
    anyone else but an admin)."""
    assert principal.user is not None  # UserPrincipalDep
    lead = await _site_lead(session, principal.site.id, lead_id, for_update=True)
    if lead.owner_id != principal.user.id and not principal.is_admin:
        raise Forbidden(
            "Only the lead's owner (or an admin) hands it over; claim it if it is unowned.",
            code="not_owner",
        )
    target = await _new_owner(session, principal.site.id, body.user_id)
    return await _set_owner(request, session, lead, target.id, now)


@router.put("/{lead_id}/owner", response_model=LeadDetail, responses=errors(BODY, 404))
async def set_lead_owner(
    lead_id: uuid.UUID,
    body: OwnerSet,
    request: Request,
    admin: AdminDep,
    session: SessionDep,
    now: NowDep,
) -> dict:
    """Reassign a lead to any active person of the site, or leave it unowned (`user_id: null`)
    (admin only: the secret key, an admin's token or session)."""
    lead = await _site_lead(session, admin.site.id, lead_id, for_update=True)
    owner = (
        None
        if body.user_id is None
        else (await _new_owner(session, admin.site.id, body.user_id)).id
    )
    return await _set_owner(request, session, lead, owner, now)


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime


def stats_period(
    now: NowDep,
    start: Annotated[UtcDateTime | None, Query(alias="from")] = None,
    end: Annotated[UtcDateTime | None, Query(alias="to")] = None,
) -> Period:
    """The stats' period [from, to): by default the last PERIOD_DAYS days up to now."""
    end = end or now
    start = start or end - timedelta(days=PERIOD_DAYS)
    if start >= end:
        raise _query_error("from", "'from' must be before 'to'.")
    return Period(start, end)


PeriodDep = Annotated[Period, Depends(stats_period)]


@stats_router.get("/funnel", response_model=FunnelStats)
async def funnel(site: MemberSiteDep, session: SessionDep, period: PeriodDep) -> dict:
    """The funnel of the leads first seen in [from, to) (default: the last 30 days): their
    shares ready / interested / cold by the site's thresholds, and how many leads moved
    between temperatures in the period."""
    return {
        **await stats.funnel(session, site.id, period.start, period.end),
        "moves": await stats.moves(session, site.id, period.start, period.end),
    }


@stats_router.get("/speed-to-lead", response_model=SpeedToLead)
async def speed_to_lead(
    site: MemberSiteDep,
    session: SessionDep,
    period: PeriodDep,
    now: NowDep,
    request: Request,
    by: Annotated[
        Literal["owner"] | None, Query(description="owner: the figures per owner too")
    ] = None,
) -> dict:
    """Hot to first contact (median, p90), shares within the marks, won and lost (with
    reasons) and leads overdue now, for leads that turned hot in [from, to) (default: the
    last 30 days); with `by=owner`, per owner too (speed to lead per person)."""
    settings = request.app.state.settings.webhooks
    return await stats.speed_to_lead(
        session, site.id, period.start, period.end, settings, now, by_owner=by == "owner"
    )
