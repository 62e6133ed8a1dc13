"""People of a site for tests: made through the team's own service (as the CLI does), with a
personal token or signed in through the API."""

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.sites.service import CreatedSite
from app.team import service
from app.team.models import User
from app.team.schemas import WEEKDAYS, UserCreate

PASSWORD = "correct horse battery"

# Every day, all day (but the last minute: an interval cannot reach 24:00)...
ALL_WEEK = {day: {"start": "00:00", "end": "23:59"} for day in WEEKDAYS}
NEVER: dict[str, Any] = {}  # ...and no working day at all.


def awake_zone() -> str:
    """A time zone where it is now well inside ALL_WEEK's hours (not the minute before
    midnight), whenever the test runs."""
    for zone in ("UTC", "Asia/Tokyo", "America/New_York"):
        if 1 <= datetime.now(ZoneInfo(zone)).hour <= 22:
            return zone
    raise AssertionError("unreachable: these zones are hours apart")


async def make_user(
    session: AsyncSession,
    site: CreatedSite,
    role: str = "manager",
    email: str | None = None,
    **fields: Any,
) -> User:
    data = UserCreate(email=email or f"{role}@shop.example", password=PASSWORD, role=role, **fields)  # type: ignore[arg-type]
    user = await service.create_user(session, site.site.id, data)
    await session.commit()
    return user


async def make_token(session: AsyncSession, user: User) -> str:
    return (await new_token(session, user)).secret


async def new_token(session: AsyncSession, user: User) -> service.CreatedToken:
    created = await service.create_token(session, user.id, "tests")
    await session.commit()
    return created


def pat(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, **fields: Any
) -> str:
    """Signs `client` in (it keeps the cookie); returns the CSRF token."""
    r = await client.post("/v1/session", json={"email": email, "password": password, **fields})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf_token"])
