"""Authentication of the site's server side: `Authorization: Bearer <secret key>`."""

from typing import Annotated

from fastapi import Depends, Request

from app.db import SessionDep
from app.errors import Forbidden, Unauthorized
from app.sites import service as sites_service
from app.sites.models import Site

BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="leadheat"'}


async def get_secret_site(request: Request, session: SessionDep) -> Site:
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
