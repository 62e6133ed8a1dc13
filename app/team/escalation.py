"""A site's escalation ladder and its off-hours choice (`team_settings`), and when a hot lead's
clock starts.

The ladder is a list of steps, each `after_minutes` from the start of the lead's clock (when it
turned hot, or the next opening): `remind_owner`, `hand_over` (to the next manager on duty),
`alert_admins`, `mark_at_risk` (`waited_too_long`). The timers that run it are in
app.webhooks.timers; what a step does is decided there, when it fires.

Off hours, when no manager is working as a lead turns hot: `on_call` (the on-call person gets
it and the clock runs: the behaviour without settings) or `next_opening` (nobody is called; the
clock, `contact_by` and the ladder start when the earliest manager's working hours open, each
read in that person's time zone, and the lead is assigned then)."""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.team.models import TeamSettings, User
from app.team.schemas import WorkingHours

Action = Literal["remind_owner", "hand_over", "alert_admins", "mark_at_risk"]
ACTIONS: tuple[str, ...] = Action.__args__  # type: ignore[attr-defined]
OffHours = Literal["on_call", "next_opening"]
AT_RISK_REASON = "waited_too_long"

_settings = cast(Table, TeamSettings.__table__)
_users = cast(Table, User.__table__)


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after_minutes: float = Field(
        gt=0, le=7 * 24 * 60, description="minutes after the lead's clock started"
    )
    action: Action = Field(
        description="remind_owner: the owner (the admins if nobody owns it); hand_over: to the"
        " next manager on duty, telling both; alert_admins: the active admins; mark_at_risk:"
        " the lead is at risk (`waited_too_long`), the owner and the admins are told"
    )


DEFAULT_LADDER: tuple[Step, ...] = (
    Step(after_minutes=5, action="remind_owner"),
    Step(after_minutes=10, action="hand_over"),
    Step(after_minutes=15, action="alert_admins"),
    Step(after_minutes=30, action="mark_at_risk"),
)


class EscalationSettings(BaseModel):
    """A site's ladder and off-hours choice (`PUT /v1/team/settings`)."""

    model_config = ConfigDict(extra="forbid")

    off_hours: OffHours = Field(
        "on_call",
        description="when no manager is working as a lead turns hot: on_call (the on-call"
        " person gets it, the clock runs) or next_opening (the clock and the ladder start at"
        " the earliest manager's next working hours)",
    )
    ladder: list[Step] = Field(
        default_factory=lambda: list(DEFAULT_LADDER),
        max_length=10,
        description="the steps, each at most once per minute mark; empty: no escalation",
    )

    @field_validator("ladder")
    @classmethod
    def _distinct_marks(cls, steps: list[Step]) -> list[Step]:
        marks = [s.after_minutes for s in steps]
        if len(set(marks)) != len(marks):
            raise ValueError("two steps at the same after_minutes: give each its own minute")
        return sorted(steps, key=lambda s: s.after_minutes)


_LADDER = TypeAdapter(list[Step])


async def settings_of(
    conn: AsyncConnection, site_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, EscalationSettings]:
    """Each site's settings (the defaults for a site without a row)."""
    wanted = set(site_ids)
    out = {site: EscalationSettings() for site in wanted}
    if wanted:
        rows = await conn.execute(select(_settings).where(_settings.c.site_id.in_(wanted)))
        for row in rows:
            out[row.site_id] = EscalationSettings(
                off_hours=row.off_hours, ladder=_LADDER.validate_python(row.ladder)
            )
    return out


@dataclass(frozen=True, slots=True)
class Shift:
    """A manager's hours, to find when somebody next works."""

    hours: WorkingHours
    time_zone: str

    def next_opening(self, at: datetime) -> datetime | None:
        return self.hours.next_opening(at, self.time_zone)


async def shifts(conn: AsyncConnection, site_id: uuid.UUID) -> list[Shift]:
    """The hours of the site's active managers with their on-duty switch on (those who will
    be working at their next opening)."""
    rows = await conn.execute(
        select(_users.c.working_hours, _users.c.time_zone).where(
            _users.c.site_id == site_id,
            _users.c.active,
            _users.c.role == "manager",
            _users.c.on_duty,
        )
    )
    return [Shift(WorkingHours.model_validate(r.working_hours), r.time_zone) for r in rows]


def clock_start(at: datetime, team: list[Shift]) -> datetime:
    """When the first-contact clock of a lead hot at `at` starts: `at` if any manager works
    then, else the earliest of their next openings (`at` when nobody has working hours)."""
    openings = [o for s in team if (o := s.next_opening(at)) is not None]
    return min(openings, default=at)


def as_json(settings: EscalationSettings) -> dict[str, Any]:
    return settings.model_dump(mode="json")
