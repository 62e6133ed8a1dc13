"""A person's profile as the API and the CLI take it: time zone (an IANA name, checked with
zoneinfo) and working hours.

Working hours are one interval per weekday in the person's time zone, `{"start": "09:00",
"end": "18:00"}` (start before end, so no interval crosses midnight), or null for a day off:
`{"mon": {...}, "tue": {...}, ..., "sun": null}`. A weekday left out is a day off. The default
is Monday to Friday, 09:00 to 18:00."""

import re
import uuid
from datetime import UTC, datetime, time, timedelta
from functools import cache
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from app.params import Text

Role = Literal["admin", "manager"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())  # reads the tz database's files: once


def _time_zone(name: str) -> str:
    # ZoneInfo alone also opens file paths it is given ("../x"); the list is the IANA names.
    if name not in _zones():
        raise ValueError(f"{name!r} is not an IANA time zone name (e.g. Europe/Moscow)")
    try:
        ZoneInfo(name)
    except ZoneInfoNotFoundError as exc:
        raise ValueError(f"{name!r} is not an IANA time zone name") from exc
    return name


TimeZone = Annotated[str, Field(max_length=64), AfterValidator(_time_zone)]
Clock = Annotated[str, Field(pattern=_HHMM.pattern, examples=["09:00"])]


class Interval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: Clock
    end: Clock = Field(description="after start (24:00 is written 23:59)")

    @model_validator(mode="after")
    def _ordered(self) -> "Interval":
        if self.end <= self.start:
            raise ValueError("end must be after start (an interval cannot cross midnight)")
        return self


class WorkingHours(BaseModel):
    """One interval per weekday in the person's time zone; null (or left out): a day off."""

    model_config = ConfigDict(extra="forbid")

    mon: Interval | None = None
    tue: Interval | None = None
    wed: Interval | None = None
    thu: Interval | None = None
    fri: Interval | None = None
    sat: Interval | None = None
    sun: Interval | None = None

    def is_working(self, at: datetime, time_zone: str) -> bool:
        """Whether `at` (aware) falls in these hours, read in `time_zone`."""
        local = at.astimezone(ZoneInfo(time_zone))
        interval: Interval | None = getattr(self, WEEKDAYS[local.weekday()])
        if interval is None:
            return False
        now = local.time()
        return time.fromisoformat(interval.start) <= now < time.fromisoformat(interval.end)

    def next_opening(self, at: datetime, time_zone: str) -> datetime | None:
        """The first instant from `at` (aware) inside these hours: `at` itself when working,
        else the start of the next interval (None: no working day at all). A start that a
        daylight-saving jump skips is taken at the offset before the jump, which lands
        inside the interval."""
        if self.is_working(at, time_zone):
            return at
        zone = ZoneInfo(time_zone)
        day = at.astimezone(zone).date()
        for offset in range(8):  # a week, and the rest of today's weekday a week on
            date = day + timedelta(days=offset)
            interval: Interval | None = getattr(self, WEEKDAYS[date.weekday()])
            if interval is None:
                continue
            # In UTC: a local time in a skipped hour is no real instant until converted.
            opening = datetime.combine(date, time.fromisoformat(interval.start), zone)
            opening = opening.astimezone(UTC)
            # (An interval wholly inside a skipped hour does not exist that day.)
            if opening >= at and self.is_working(opening, time_zone):
                return opening
        return None


def default_working_hours() -> WorkingHours:
    office = Interval(start="09:00", end="18:00")
    return WorkingHours(mon=office, tue=office, wed=office, thu=office, fri=office)


Email = Annotated[Text, Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
Password = Annotated[str, Field(min_length=8, max_length=1024)]


_LIMIT = (
    "a manager with this many open hot leads (not won or lost) gets no new one by"
    " round-robin; null: no limit"
)
_ON_CALL = "gets hot leads when no manager is on duty (anyone active and on call, fairly)"


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: Password
    role: Role
    name: Text = Field("", max_length=200)
    time_zone: TimeZone = "UTC"
    working_hours: WorkingHours = Field(default_factory=default_working_hours)
    on_duty: bool = True
    max_open_hot_leads: int | None = Field(None, ge=1, le=10_000, description=_LIMIT)
    on_call: bool = Field(False, description=_ON_CALL)


class ProfileUpdate(BaseModel):
    """What a person changes about themselves (`PATCH /v1/me`)."""

    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(None, max_length=200)
    time_zone: TimeZone | None = None
    working_hours: WorkingHours | None = None
    on_duty: bool | None = None


class UserUpdate(ProfileUpdate):
    """What an admin changes about a person (`PATCH /v1/users/{id}`)."""

    role: Role | None = None
    password: Password | None = Field(
        None, description="a new password (a forgotten one): their sessions end, tokens stay"
    )
    active: bool | None = Field(
        None, description="false: deactivated; their sessions and tokens stop at once"
    )
    max_open_hot_leads: int | None = Field(
        None, ge=0, le=10_000, description=_LIMIT + " (0 here removes the limit)"
    )
    on_call: bool | None = Field(None, description=_ON_CALL)


class UserOut(BaseModel):
    """A person; never their password hash."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    site_id: uuid.UUID
    email: str
    name: str
    role: Role
    active: bool
    time_zone: str
    working_hours: WorkingHours
    on_duty: bool
    max_open_hot_leads: int | None = Field(description=_LIMIT)
    on_call: bool = Field(description=_ON_CALL)
    created_at: datetime


class Colleague(BaseModel):
    """A person of one's site as anyone of it sees them: to hand a lead over to."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    email: str
    role: Role
    on_duty: bool


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(max_length=1024)
    new_password: Password


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=200, description="what the token is for")


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    created_at: datetime


class TokenCreated(TokenOut):
    token: str = Field(description="lh_pat_...: shown only now")


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: str = Field(max_length=1024)
    site: Text | None = Field(
        None,
        max_length=200,
        description="the site's id or name; needed only when the email belongs to people of"
        " several sites with this password",
    )


class SessionOut(BaseModel):
    user: UserOut
    csrf_token: str = Field(
        description="send it back as `X-CSRF-Token` with every change made with the cookie"
    )
    expires_at: datetime
