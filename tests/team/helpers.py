"""People of a site for tests: made through the team's own service (as the CLI does), with a
personal token or signed in through the API."""

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.sites.service import CreatedSite
from app.team import service
from app.team.models import User
from app.team.schemas import UserCreate

PASSWORD = "correct horse battery"


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
