"""Where hot leads go and what happens when nobody acts, set by the site's admins: the
escalation ladder and the off-hours choice (`/v1/team/settings`) and the assignment rules
(`/v1/assignment-rules`). Admin only: the secret key, an admin's token or session."""

import uuid

from fastapi import APIRouter, Response
from sqlalchemy.dialects import postgresql, sqlite

from app.db import SessionDep, utcnow
from app.openapi import BODY, SECRET_KEY_ERRORS, errors
from app.sites.dependencies import AdminDep
from app.team import escalation, rules
from app.team.models import AssignmentRule, TeamSettings

settings_router = APIRouter(
    prefix="/v1/team/settings", tags=["team"], responses=errors(*SECRET_KEY_ERRORS)
)
rules_router = APIRouter(
    prefix="/v1/assignment-rules", tags=["team"], responses=errors(*SECRET_KEY_ERRORS)
)


@settings_router.get("", response_model=escalation.EscalationSettings)
async def get_team_settings(admin: AdminDep, session: SessionDep) -> escalation.EscalationSettings:
    """The site's escalation ladder and off-hours choice (the defaults until changed)."""
    conn = await session.connection()
    return (await escalation.settings_of(conn, [admin.site.id]))[admin.site.id]


@settings_router.put("", response_model=escalation.EscalationSettings, responses=errors(BODY))
async def put_team_settings(
    body: escalation.EscalationSettings, admin: AdminDep, session: SessionDep
) -> escalation.EscalationSettings:
    """Replace the ladder and the off-hours choice (a field left out takes its default). Leads
    already hot keep the ladder they started with."""
    values = {
        "site_id": admin.site.id,
        "off_hours": body.off_hours,
        "ladder": escalation.as_json(body)["ladder"],
        "updated_at": utcnow(),
    }
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert = dialect.insert(TeamSettings).values(values)
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=["site_id"],
            set_={k: insert.excluded[k] for k in ("off_hours", "ladder", "updated_at")},
        )
    )
    return body


@rules_router.get("", response_model=list[rules.RuleOut])
async def list_assignment_rules(admin: AdminDep, session: SessionDep) -> list[AssignmentRule]:
    """The site's assignment rules, in the order they are tried."""
    return await rules.list_rules(session, admin.site.id)


@rules_router.post("", status_code=201, response_model=rules.RuleOut, responses=errors(BODY))
async def create_assignment_rule(
    body: rules.RuleIn, admin: AdminDep, session: SessionDep
) -> AssignmentRule:
    """Add a rule: hot leads matching every condition given go to its people (round-robin
    among those on duty), before the site-wide round-robin. 422 if a person is not an active
    person of the site."""
    return await rules.create_rule(session, admin.site.id, body, utcnow())


@rules_router.get("/{rule_id}", response_model=rules.RuleOut, responses=errors(404))
async def get_assignment_rule(
    rule_id: uuid.UUID, admin: AdminDep, session: SessionDep
) -> AssignmentRule:
    """One rule."""
    return await rules.get_rule(session, admin.site.id, rule_id)


@rules_router.put("/{rule_id}", response_model=rules.RuleOut, responses=errors(BODY, 404))
async def replace_assignment_rule(
    rule_id: uuid.UUID, body: rules.RuleIn, admin: AdminDep, session: SessionDep
) -> AssignmentRule:
    """Replace a rule (its conditions, people, position, switch)."""
    rule = await rules.get_rule(session, admin.site.id, rule_id)
    return await rules.replace_rule(session, rule, body, utcnow())


@rules_router.delete("/{rule_id}", status_code=204, responses=errors(404))
async def delete_assignment_rule(
    rule_id: uuid.UUID, admin: AdminDep, session: SessionDep
) -> Response:
    """Delete a rule."""
    rule = await rules.get_rule(session, admin.site.id, rule_id)
    await session.delete(rule)
    return Response(status_code=204)
