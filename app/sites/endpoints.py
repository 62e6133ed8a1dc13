"""HTTP: the site's own keys (secret key): rotate the secret key."""

import uuid

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from app.db import SessionDep
from app.errors import Unauthorized
from app.openapi import SECRET_KEY_ERRORS, errors
from app.sites import service
from app.sites.dependencies import BEARER_CHALLENGE, SecretSiteDep

router = APIRouter(prefix="/v1/site", tags=["site"], responses=errors(*SECRET_KEY_ERRORS))


class SecretKeyRotated(BaseModel):
    site_id: uuid.UUID
    secret_key: str = Field(description="sk_...: shown only now; the previous key has stopped")


@router.post("/secret-key/rotate", response_model=SecretKeyRotated)
async def rotate_secret_key(site: SecretSiteDep, session: SessionDep, response: Response) -> dict:
    """A new secret key, shown once; the key this request was made with stops working at once
    (on every replica: keys are looked up on each request, never cached)."""
    secret_key = await service.rotate_secret_key(session, site.id, site.secret_key_hash)
    if secret_key is None:
        raise Unauthorized(
            "This secret key was just rotated by another request.", headers=BEARER_CHALLENGE
        )
    await session.commit()  # the answer carries the only copy of the key: it must be stored
    response.headers["cache-control"] = "no-store"
    return {"site_id": site.id, "secret_key": secret_key}
