"""Who a request acts as: its principal (a site, a role, and the person if any), resolved here
and only here, from one of

- `Authorization: Bearer sk_...`: the site's secret key, for the shop's server (an admin);
- `Authorization: Bearer lh_pat_...`: a person's API token, with the person's current role;
- the `leadheat_session` cookie of a dashboard sign-in, with the person's current role; a
  change (any method but GET, HEAD, OPTIONS) made with it must also carry the session's CSRF
  token in `X-CSRF-Token`, which a cross-site form or script cannot send.

Each is one indexed query on every request, never cached: a rotated key, a revoked token, a
deactivated person or a closed session stops at once, on every replica."""

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select

from app.db import READ_METHODS, SessionDep, utcnow
from app.errors import Forbidden, Unauthorized
from app.sites import service as sites_service
from app.sites.models import Site
from app.team.models import ApiToken, User, UserSession
from app.team.service import SESSION_COOKIE, TOKEN_PREFIX, digest

BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="leadheat"'}
CSRF_HEADER = "x-csrf-token"

# Only for the OpenAPI document: FastAPI declares these schemes and applies them, as
# alternatives, to each route that depends on them. They never answer themselves (the
# credentials are read below, with our errors).
_SECRET_KEY_SCHEME = HTTPBearer(
    scheme_name="secretKey",
    description="The site's secret key: `Authorization: Bearer sk_...` (a write key is 403).",
    auto_error=False,
)
_TOKEN_SCHEME = HTTPBearer(
    scheme_name="personalToken",
    description="A person's API token: `Authorization: Bearer lh_pat_...`, with their role.",
    auto_error=False,
)
_SESSION_SCHEME = APIKeyCookie(
    name=SESSION_COOKIE,
    scheme_name="session",
    description="A dashboard sign-in (`POST /v1/session`); a change made with it also needs"
    " the session's CSRF token in `X-CSRF-Token`.",
    auto_error=False,
)
_Bearer = HTTPAuthorizationCredentials | None


@dataclass(frozen=True, slots=True)
class Principal:
    site: Site
    role: str  # "admin" or "manager"
    user: User | None = None  # None: the site's secret key
    session_hash: str | None = None  # the signed-in session's id digest, with the cookie

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


async def get_principal(
    request: Request,
    session: SessionDep,
    _key: Annotated[_Bearer, Depends(_SECRET_KEY_SCHEME)],
    _token: Annotated[_Bearer, Depends(_TOKEN_SCHEME)],
    _session: Annotated[str | None, Depends(_SESSION_SCHEME)],
) -> Principal:
    header = request.headers.get("authorization")
    if header is not None:
        return await _bearer_principal(session, header)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return await _session_principal(request, session, cookie)
    raise Unauthorized(
        "Send the site's secret key or a personal token as 'Authorization: Bearer ...', or"
        " sign in (POST /v1/session).",
        headers=BEARER_CHALLENGE,
    )


async def _bearer_principal(session: SessionDep, header: str) -> Principal:
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized(
            "Send the site's secret key as 'Authorization: Bearer sk_...'.",
            headers=BEARER_CHALLENGE,
        )
    if token.startswith(sites_service.WRITE_KEY_PREFIX):
        raise Forbidden(
            "A write key can only send events; use the site's secret key.",
            code="write_key_not_allowed",
        )
    if token.startswith(TOKEN_PREFIX):
        row = (
            await session.execute(
                select(User, Site)
                .join(ApiToken, ApiToken.user_id == User.id)
                .join(Site, Site.id == User.site_id)
                .where(ApiToken.token_hash == digest(token), User.active)
            )
        ).first()
        if row is None:
            raise Unauthorized("Unknown or revoked token.", headers=BEARER_CHALLENGE)
        return Principal(site=row.Site, role=row.User.role, user=row.User)
    site = await sites_service.get_by_secret_key(session, token)
    if site is None:
        raise Unauthorized("Unknown secret key.", headers=BEARER_CHALLENGE)
    return Principal(site=site, role="admin")


async def _session_principal(request: Request, session: SessionDep, cookie: str) -> Principal:
    id_hash = digest(cookie)
    row = (
        await session.execute(
            select(User, Site, UserSession.csrf_token)
            .join(UserSession, UserSession.user_id == User.id)
            .join(Site, Site.id == User.site_id)
            .where(UserSession.id_hash == id_hash, UserSession.expires_at > utcnow(), User.active)
        )
    ).first()
    if row is None:
        raise Unauthorized(
            "Signed out, or the session has expired: sign in again.",
            code="session_expired",
            headers=BEARER_CHALLENGE,
        )
    if request.method not in READ_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), row.csrf_token.encode()):
            raise Forbidden(
                "A change made with the session cookie must carry the session's CSRF token in"
                " X-CSRF-Token (returned at sign-in and by GET /v1/session).",
                code="csrf_failed",
            )
    return Principal(site=row.Site, role=row.User.role, user=row.User, session_hash=id_hash)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin:
        raise Forbidden(
            "Only an admin can do this (rules, webhooks, the team, the site's settings).",
            code="admin_only",
        )
    return principal


async def get_admin_site(principal: Annotated[Principal, Depends(get_admin)]) -> Site:
    return principal.site


async def get_member_site(principal: PrincipalDep) -> Site:
    return principal.site


async def get_user_principal(principal: PrincipalDep) -> Principal:
    if principal.user is None:
        raise Forbidden(
            "This is about a person: use a personal token or sign in, not the site's secret key.",
            code="person_required",
        )
    return principal


AdminDep = Annotated[Principal, Depends(get_admin)]
UserPrincipalDep = Annotated[Principal, Depends(get_user_principal)]
# The site of an admin: the secret key, an admin's token or an admin's session. Every route
# that names this is admin only (rules, webhooks, site settings, privacy erasure).
SecretSiteDep = Annotated[Site, Depends(get_admin_site)]
# The site of anyone of it, admin or manager: leads, their contacts and statuses, statistics.
MemberSiteDep = Annotated[Site, Depends(get_member_site)]
