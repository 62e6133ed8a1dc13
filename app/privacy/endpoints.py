"""`DELETE /v1/people` (secret key): erase a person."""

from fastapi import APIRouter

from app.db import SessionDep
from app.openapi import BODY, SECRET_KEY_ERRORS, errors
from app.privacy.erasure import erase_person
from app.privacy.schemas import ErasureOut, PersonIn
from app.sites.dependencies import SecretSiteDep

router = APIRouter(prefix="/v1/people", tags=["privacy"], responses=errors(*SECRET_KEY_ERRORS))


@router.delete("", response_model=ErasureOut, responses=errors(BODY))
async def erase(body: PersonIn, site: SecretSiteDep, session: SessionDep) -> dict:
    """Erase a person (GDPR art. 17, 152-FZ art. 21): every lead they are known by, across
    merges, with their events, identities, recorded contacts, timers, repair marks and webhook
    messages, in one transaction, committed before the answer. Every identifier they were
    known by is suppressed (kept only as a salted hash): later events carrying one are
    dropped at ingestion. The identifiers travel in the JSON body, not the URL, so that they
    stay out of access logs. Idempotent: a second call (or identifiers nobody has) answers 200
    with zero counts, and suppresses them all the same."""
    result = await erase_person(
        session, site.id, user_id=body.userId, anonymous_id=body.anonymousId, email=body.email
    )
    return {
        "erased": result.erased.as_dict(),
        "suppressed_identifiers": result.suppressed_identifiers,
    }
