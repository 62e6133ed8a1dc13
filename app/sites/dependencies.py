"""Authentication of the site's server side: `Authorization: Bearer <secret key>`."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.db import SessionDep
from app.errors import Forbidden, Unauthorized
from app.sites import service as sites_service
from app.sites.models import Site

BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="leadheat"'}
# Only for the OpenAPI document: FastAPI declares this scheme and applies it to each route
# that depends on it. It never answers itself (the header is checked below, with our errors).
_SECRET_KEY_SCHEME = HTTPBearer(
    scheme_name="secretKey",
    description="The site's secret key: `Authorization: Bearer sk_...` (a write key is 403).",
    auto_error=False,
)
_Documented = Annotated[HTTPAuthorizationCredentials | None, Depends(_SECRET_KEY_SCHEME)]


async def get_secret_site(request: Request, session: SessionDep, _scheme: _Documented) -> Site:
    header = request.headers.get("authorization", "")
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
    site = await sites_service.get_by_secret_key(session, token)
    if site is None:
        raise Unauthorized("Unknown secret key.", headers=BEARER_CHALLENGE)
    return site


SecretSiteDep = Annotated[Site, Depends(get_secret_site)]
