"""The team's HTTP API: people (`/v1/users`, admins), one's own profile and tokens (`/v1/me`),
and dashboard sign-in (`/v1/session`).

Sign-in takes an email and a password, and a site only when needed: emails are unique per
site, not across sites, so when the same email and password open people of several sites the
answer is 409 `site_required`, listing them, and the form asks which (one shop's staff never
sees it). A session is a row of `user_sessions`; the browser holds its random id in an
HttpOnly, SameSite=Lax cookie, Secure when the request came over https (behind a proxy, as
X-Forwarded-Proto tells uvicorn)."""

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from app.db import SessionDep, utcnow
from app.errors import Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized
from app.openapi import BODY, SECRET_KEY_ERRORS, errors
from app.sites import service as sites_service
from app.sites.dependencies import AdminDep, UserPrincipalDep
from app.sites.models import Site
from app.team import service
from app.team.models import User
from app.team.schemas import (
    Colleague,
    PasswordChange,
    ProfileUpdate,
    SessionCreate,
    SessionOut,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserCreate,
    UserOut,
    UserUpdate,
)

users_router = APIRouter(prefix="/v1/users", tags=["team"], responses=errors(*SECRET_KEY_ERRORS))
me_router = APIRouter(prefix="/v1/me", tags=["team"], responses=errors(*SECRET_KEY_ERRORS))
session_router = APIRouter(prefix="/v1/session", tags=["team"])


def _changes(body: ProfileUpdate) -> dict[str, Any]:
    """The fields given (a null is no change: every field has a value)."""
    changes = body.model_dump(exclude_unset=True, mode="json")
    return {field: value for field, value in changes.items() if value is not None}


@users_router.get("", response_model=list[UserOut])
async def list_users(admin: AdminDep, session: SessionDep) -> list[User]:
    """The site's people (admin only)."""
    return await service.list_users(session, admin.site.id)


@users_router.post("", status_code=201, response_model=UserOut, responses=errors(BODY, 409))
async def create_user(body: UserCreate, admin: AdminDep, session: SessionDep) -> User:
    """Add a person to the site with a first password (admin only). The email is unique per
    site whatever its case (409 `email_taken`)."""
    return await service.create_user(session, admin.site.id, body)


@users_router.patch("/{user_id}", response_model=UserOut, responses=errors(BODY, 404, 409))
async def update_user(
    user_id: uuid.UUID, body: UserUpdate, admin: AdminDep, session: SessionDep
) -> User:
    """Change a person's role, profile or on-duty switch, or deactivate them (`active:
    false`): their sessions and tokens stop at once (admin only). The site's last active
    admin stays one (409 `last_admin`): nobody could manage the team from the dashboard."""
    user = await service.get_user(session, admin.site.id, user_id)
    if user is None:
        raise NotFound("This site has no such person.")
    changes = _changes(body)
    stops_being_admin = changes.get("role", "admin") != "admin" or changes.get("active") is False
    last = user.role == "admin" and user.active and stops_being_admin
    if last and await service.count_active_admins(session, admin.site.id) <= 1:
        raise Conflict(
            "This is the site's last active admin: make someone else an admin first.",
            code="last_admin",
        )
    await service.update_user(session, user, changes)
    return user


@me_router.get("", response_model=UserOut)
async def get_me(me: UserPrincipalDep) -> User:
    """The signed-in person (or the token's)."""
    assert me.user is not None
    return me.user


@me_router.patch("", response_model=UserOut, responses=errors(BODY))
async def update_me(body: ProfileUpdate, me: UserPrincipalDep, session: SessionDep) -> User:
    """Change one's own name, time zone, working hours or on-duty switch."""
    assert me.user is not None
    await service.update_user(session, me.user, _changes(body))
    return me.user


@me_router.get("/colleagues", response_model=list[Colleague])
async def list_colleagues(me: UserPrincipalDep, session: SessionDep) -> list[User]:
    """The active people of one's site (any role): whom one can hand a lead over to."""
    return await service.list_colleagues(session, me.site.id)


@me_router.post("/password", status_code=204, responses=errors(BODY, 429))
async def change_password(
    body: PasswordChange, request: Request, me: UserPrincipalDep, session: SessionDep
) -> None:
    """Change one's password, giving the current one (a wrong one counts as a failed
    sign-in). Every other session of this person ends; this one and the tokens stay."""
    assert me.user is not None
    user, now = me.user, utcnow()
    keys = service.failure_keys(user.email, request.client.host if request.client else None)
    if await service.too_many_failures(session, keys, now):
        raise _too_many()
    await session.commit()  # no transaction held while the password is checked
    if not await service.verify_candidates([user], body.current_password):
        await service.record_failure(session, keys, now)
        await session.commit()
        raise Forbidden("The current password is wrong.", code="wrong_password")
    await service.set_password(session, user, body.new_password, keep_session=me.session_hash)


@me_router.get("/tokens", response_model=list[TokenOut])
async def list_tokens(me: UserPrincipalDep, session: SessionDep) -> list[Any]:
    """One's personal API tokens (never their values)."""
    assert me.user is not None
    return list(await service.list_tokens(session, me.user.id))


@me_router.post("/tokens", status_code=201, response_model=TokenCreated, responses=errors(BODY))
async def create_token(
    body: TokenCreate, me: UserPrincipalDep, session: SessionDep, response: Response
) -> dict[str, Any]:
    """A personal API token, shown once: `Authorization: Bearer lh_pat_...` acts as its
    person, with their role at the time of each request."""
    assert me.user is not None
    created = await service.create_token(session, me.user.id, body.name)
    await session.commit()  # the answer carries the only copy of the token
    response.headers["cache-control"] = "no-store"
    token = created.token
    return {
        "id": token.id,
        "name": token.name,
        "created_at": token.created_at,
        "token": created.secret,
    }


@me_router.delete("/tokens/{token_id}", status_code=204, responses=errors(404))
async def revoke_token(token_id: uuid.UUID, me: UserPrincipalDep, session: SessionDep) -> None:
    """Revoke one of one's tokens: the next request with it is refused."""
    assert me.user is not None
    if not await service.revoke_token(session, me.user.id, token_id):
        raise NotFound("You have no such token.")


@me_router.delete("/sessions", status_code=204)
async def sign_out_everywhere(
    me: UserPrincipalDep, session: SessionDep, response: Response
) -> None:
    """Sign out of every browser: every session of this person ends (tokens stay)."""
    assert me.user is not None
    await service.end_sessions(session, me.user.id)
    response.delete_cookie(service.SESSION_COOKIE, path="/", httponly=True, samesite="lax")


def _too_many() -> TooManyRequests:
    return TooManyRequests(
        "Too many failed sign-ins; try again later.",
        headers={"Retry-After": str(int(service.FAILURE_WINDOW.total_seconds()))},
    )


def _set_cookie(request: Request, response: Response, created: service.CreatedSession) -> None:
    response.set_cookie(
        service.SESSION_COOKIE,
        created.session_id,
        max_age=int(service.SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


@session_router.post("", response_model=SessionOut, responses=errors(BODY, 401, 409, 422, 429, 503))
async def sign_in(
    body: SessionCreate, request: Request, response: Response, session: SessionDep
) -> dict[str, Any]:
    """Sign in to the dashboard with email and password: sets the session cookie and returns
    the CSRF token that every change made with it must carry (`X-CSRF-Token`). Failed sign-ins
    are limited per email and per client address (429 with Retry-After)."""
    now = utcnow()
    keys = service.failure_keys(body.email, request.client.host if request.client else None)
    if await service.too_many_failures(session, keys, now):
        raise _too_many()
    site_ids = None
    if body.site is not None:
        site_ids = [site.id for site in await sites_service.find_site(session, body.site)]
    candidates = await service.find_candidates(session, body.email, site_ids)
    # Nothing is written yet: end the transaction, so that none (nor, on SQLite, the write
    # lock) is held while the password is checked.
    await session.commit()
    matched = await service.verify_candidates(candidates, body.password)
    if not matched:
        await service.record_failure(session, keys, now)
        await session.commit()  # the failure counts even though the answer is an error
        raise Unauthorized("Wrong email or password.", code="invalid_credentials", headers={})
    if len(matched) > 1:
        sites = await session.execute(
            select(Site.id, Site.name).where(Site.id.in_([u.site_id for u in matched]))
        )
        raise Conflict(
            "This email and password open several sites: say which (`site`).",
            code="site_required",
            details=[{"site_id": str(row.id), "site_name": row.name} for row in sites],
        )
    user = matched[0]
    await service.clear_failures(session, body.email)
    created = await service.start_session(session, user)
    await session.commit()  # the cookie must name a stored session
    _set_cookie(request, response, created)
    response.headers["cache-control"] = "no-store"
    return {
        "user": user,
        "csrf_token": created.row.csrf_token,
        "expires_at": created.row.expires_at,
    }


@session_router.get("", response_model=SessionOut, responses=errors(*SECRET_KEY_ERRORS))
async def get_session(me: UserPrincipalDep, session: SessionDep, response: Response) -> dict:
    """The current sign-in and its CSRF token (for a page reloaded: the cookie is HttpOnly)."""
    row = await service.get_session(session, me.session_hash) if me.session_hash else None
    if row is None:
        raise Unauthorized(
            "Not signed in with the session cookie.", code="session_expired", headers={}
        )
    response.headers["cache-control"] = "no-store"
    return {"user": me.user, "csrf_token": row.csrf_token, "expires_at": row.expires_at}


@session_router.delete("", status_code=204, responses=errors(*SECRET_KEY_ERRORS))
async def sign_out(me: UserPrincipalDep, session: SessionDep, response: Response) -> None:
    """Sign out this browser: the session ends and the cookie is cleared."""
    if me.session_hash is not None:
        await service.end_session(session, me.session_hash)
    response.delete_cookie(service.SESSION_COOKIE, path="/", httponly=True, samesite="lax")
