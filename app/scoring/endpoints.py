"""The rule-set API (admins): read versions, publish (with a note), compare and restore
versions, preview a draft (at once, or as a background job), follow re-scoring."""

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse
from pydantic import WithJsonSchema
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import SessionDep, utcnow, writer
from app.errors import NotFound
from app.openapi import BODY, SECRET_KEY_ERRORS, errors
from app.params import PositiveInt32, Text, UtcDateTime
from app.scoring import preview_jobs, rescoring, rule_sets, warnings
from app.scoring.diffs import diff_definitions
from app.scoring.models import RuleSetVersion
from app.scoring.rule_set_schema import rule_set_json_schema
from app.scoring.views import (
    Preview,
    PreviewJobView,
    Published,
    RescoreJobView,
    RuleSetDiff,
    RuleSetJsonSchema,
    RuleSetView,
    VersionList,
)
from app.sites.dependencies import AdminDep, Principal, SecretSiteDep

router = APIRouter(prefix="/v1/rules", tags=["rules"], responses=errors(*SECRET_KEY_ERRORS))

# Read as a plain JSON object and validated by `parse_rule_set`, whose error details name each
# bad rule and field; documented by the JSON Schema of the model that validates it.
RuleSetDocument = Annotated[
    dict[str, Any],
    Body(
        description="A rule set (name, thresholds, behaviour, fit, hard, decay, ...); "
        "`version`, `created_at` and `active` are ignored.",
    ),
    WithJsonSchema({"$ref": "#/components/schemas/RuleSetDocument"}),
]


def _version_view(row: RuleSetVersion, active: bool) -> dict[str, Any]:
    return {
        **row.definition,
        "version": row.version,
        "created_at": row.created_at,
        "active": active,
    }


@router.get("", response_model=RuleSetView, responses=errors(404))
async def get_active_rule_set(site: SecretSiteDep, session: SessionDep) -> dict[str, Any]:
    """The rule set the site's leads are scored with now."""
    row = await rule_sets.get_version(session, site.id)
    if row is None:
        raise NotFound("This site has no rule set.")
    return _version_view(row, active=True)


# The note is a query parameter, not a field of the document: the document stays exactly the
# rule set (its schema forbids unknown fields, and what GET answers can be PUT back as is).
Note = Annotated[
    Text | None,
    Query(max_length=500, description="why this version is published, shown in the versions"),
]


def _author(principal: Principal) -> str:
    return principal.user.email if principal.user is not None else "secret key"


async def _publish(
    request: Request,
    principal: Principal,
    session: AsyncSession,
    document: dict[str, Any],
    note: str | None,
) -> dict[str, Any]:
    """Publish `document` as the site's next version and re-score its leads (the one way a
    version is made: `PUT /v1/rules` and restoring an old version both come here)."""
    settings = request.app.state.settings
    config = rescoring.RescoreConfig.from_settings(settings)
    site_id = principal.site.id
    published = await rule_sets.publish(
        session,
        site_id,
        document,
        now=utcnow(),
        sync_max_leads=settings.scoring.rescore_sync_max_leads,
        lease=config.lease,
        note=note,
        author=_author(principal),
    )
    await session.commit()  # the version must be visible before the caches drop theirs
    request.app.state.rule_sets.invalidate(site_id)
    # Read after the commit: the site's row lock queues other publishes, not these reads.
    found = await warnings.warnings_for(
        await session.connection(), site_id, published.rule_set, utcnow()
    )
    await session.commit()  # ends the read (on SQLite a transaction holds the write lock)
    job = published.job
    if published.synchronous:
        await rescoring.run_job(
            writer(request.app.state.engine),
            job,
            config,
            utcnow,
            release_on_error=True,
            lead_changes=request.app.state.lead_changes,
        )
        await session.refresh(job)
    version = published.version
    return {
        "version": version.version,
        "created_at": version.created_at,
        "note": version.note,
        "author": version.author,
        "job": rule_sets.job_view(job),
        "warnings": found,
    }


@router.put("", response_model=Published, responses=errors(BODY))
async def publish_rule_set(
    request: Request,
    principal: AdminDep,
    session: SessionDep,
    document: RuleSetDocument,
    note: Note = None,
) -> dict[str, Any]:
    """Validate and publish a new version, then re-score the site's leads with it: before
    answering for a small site, otherwise in the background (follow the job's `url`). The
    version keeps the `note` and who published it; the answer carries `warnings` about the
    rules (an event name the site never sent, ...), which do not stop the publish."""
    return await _publish(request, principal, session, document, note)


@router.get(
    "/schema",
    response_model=RuleSetJsonSchema,
    summary="The rule set's JSON Schema",
    response_description="A JSON Schema (draft 2020-12) of the rule-set document",
)
async def get_rule_set_schema(_site: SecretSiteDep) -> dict[str, Any]:
    """The JSON Schema of the document `PUT /v1/rules` takes, made from the model that
    validates it: for an editor to check a rule set as it is written. The service's check has
    the last word (e.g. that rule ids are unique and `hot` is at most `max_score`)."""
    return rule_set_json_schema()


@router.get("/versions", response_model=VersionList)
async def list_rule_set_versions(site: SecretSiteDep, session: SessionDep) -> dict[str, Any]:
    """Every published version, newest (the active one) first."""
    rows = await rule_sets.list_versions(session, site.id)
    return {
        "versions": [
            {
                "version": row.version,
                "name": row.definition.get("name"),
                "created_at": row.created_at,
                "active": index == 0,
                "note": row.note,
                "author": row.author,
            }
            for index, row in enumerate(rows)
        ]
    }


@router.get("/versions/{version}", response_model=RuleSetView, responses=errors(404))
async def get_rule_set_version(
    version: PositiveInt32, site: SecretSiteDep, session: SessionDep
) -> dict[str, Any]:
    row = await _version_or_404(session, site.id, version)
    latest = await rule_sets.latest_version_number(session, site.id)
    return _version_view(row, active=row.version == latest)


async def _version_or_404(
    session: AsyncSession, site_id: uuid.UUID, version: int
) -> RuleSetVersion:
    row = await rule_sets.get_version(session, site_id, version)
    if row is None:
        raise NotFound(f"This site has no rule-set version {version}.")
    return row


@router.get(
    "/versions/{version}/diff/{other}",
    response_model=RuleSetDiff,
    responses=errors(404),
    summary="What changed between two versions",
)
async def diff_rule_set_versions(
    version: PositiveInt32, other: PositiveInt32, site: SecretSiteDep, session: SessionDep
) -> dict[str, Any]:
    """From `version` to `other` (either may be the older): rules added, removed and changed,
    matched by rule id, each change field by field; and the rule set's settings changed."""
    old = await _version_or_404(session, site.id, version)
    new = await _version_or_404(session, site.id, other)
    return {"from": version, "to": other, **diff_definitions(old.definition, new.definition)}


@router.post(
    "/versions/{version}/restore",
    response_model=Published,
    responses=errors(404, BODY),
    summary="Publish an old version again",
)
async def restore_rule_set_version(
    version: PositiveInt32,
    request: Request,
    principal: AdminDep,
    session: SessionDep,
    note: Note = None,
) -> dict[str, Any]:
    """Publish version `version`'s rules as a new version (history is never rewritten) and
    re-score the site's leads with it, as `PUT /v1/rules` does. The note defaults to
    "restored from version N"."""
    row = await _version_or_404(session, principal.site.id, version)
    note = note if note is not None else f"restored from version {version}"
    return await _publish(request, principal, session, dict(row.definition), note)


@router.get("/jobs/{job_id}", response_model=RescoreJobView, responses=errors(404))
async def get_rescore_job(
    job_id: uuid.UUID, site: SecretSiteDep, session: SessionDep
) -> dict[str, Any]:
    """A re-scoring job's progress."""
    job = await rule_sets.get_job(session, site.id, job_id)
    if job is None:
        raise NotFound("No such re-scoring job.")
    return rule_sets.job_view(job)


PreviewAt = Annotated[
    UtcDateTime | None, Query(description="evaluate at this moment (default: now)")
]
PreviewLimit = Annotated[int, Query(ge=0, le=1000, description="changed leads listed")]


async def _start_preview_job(
    request: Request,
    site_id: uuid.UUID,
    session: AsyncSession,
    document: dict[str, Any],
    at: datetime | None,
    limit: int,
) -> JSONResponse:
    settings = request.app.state.settings
    now = utcnow()
    job = await preview_jobs.create_job(
        session,
        site_id,
        document,
        at=at or now,
        limit=limit,
        now=now,
        keep=timedelta(hours=settings.scoring.preview_job_keep_hours),
    )
    await session.commit()
    view = PreviewJobView.model_validate(preview_jobs.job_view(job))
    return JSONResponse(
        view.model_dump(mode="json", by_alias=True),
        status_code=202,
        headers={"Location": view.url},
    )


_PREVIEW_JOB_STARTED: dict[int | str, dict[str, Any]] = {
    202: {"model": PreviewJobView, "description": "Started: follow the job's `url`"}
}


@router.post(
    "/preview",
    response_model=Preview,
    responses={**errors(BODY), **_PREVIEW_JOB_STARTED},
)
async def preview_rule_set(
    request: Request,
    site: SecretSiteDep,
    session: SessionDep,
    document: RuleSetDocument,
    at: PreviewAt = None,
    limit: PreviewLimit = 100,
) -> Any:
    """How the site's leads would be scored by a draft, against the active rule set, from
    their stored events, without publishing anything or changing any lead. A small site
    (up to `SCORING__PREVIEW_SYNC_MAX_LEADS` leads) is answered at once (200); for a larger
    one a preview job is started (202, as `POST /v1/rules/preview/jobs`)."""
    settings = request.app.state.settings
    leads = await preview_jobs.count_live_leads(session, site.id)
    if leads > settings.scoring.preview_sync_max_leads:
        return await _start_preview_job(request, site.id, session, document, at, limit)
    conn = await session.connection()
    answer = await rule_sets.preview(
        conn,
        site.id,
        document,
        now=at or utcnow(),
        visit_timeout=timedelta(minutes=settings.ingestion.visit_timeout_minutes),
        limit=limit,
    )
    _, draft = rule_sets.validate_draft(document, answer["active_version"] + 1)
    answer["warnings"] = await warnings.warnings_for(conn, site.id, draft, utcnow())
    return answer


@router.post(
    "/preview/jobs",
    status_code=202,
    response_model=PreviewJobView,
    responses=errors(BODY),
)
async def start_preview_job(
    request: Request,
    site: SecretSiteDep,
    session: SessionDep,
    document: RuleSetDocument,
    at: PreviewAt = None,
    limit: PreviewLimit = 100,
) -> Any:
    """Start previewing a draft in the background, whatever the site's size: follow the job's
    `url` until it is `done`; its `result` is what `POST /v1/rules/preview` answers."""
    return await _start_preview_job(request, site.id, session, document, at, limit)


@router.get("/preview/jobs/{job_id}", response_model=PreviewJobView, responses=errors(404))
async def get_preview_job(
    job_id: uuid.UUID, site: SecretSiteDep, session: SessionDep
) -> dict[str, Any]:
    """A preview job's progress, and its result once done."""
    job = await preview_jobs.get_job(session, site.id, job_id)
    if job is None:
        raise NotFound("No such preview job.")
    return preview_jobs.job_view(job)


@router.post(
    "/preview/jobs/{job_id}/cancel", response_model=PreviewJobView, responses=errors(404, 409)
)
async def cancel_preview_job(
    job_id: uuid.UUID, site: SecretSiteDep, session: SessionDep
) -> dict[str, Any]:
    """Cancel a preview job: a pending one at once, a running one after the batch of leads in
    hand (`cancel_requested` until then). 409 `job_finished` when it is done or failed."""
    job = await preview_jobs.get_job(session, site.id, job_id)
    if job is None:
        raise NotFound("No such preview job.")
    await preview_jobs.cancel_job(session, job, utcnow())
    await session.commit()
    return preview_jobs.job_view(job)
