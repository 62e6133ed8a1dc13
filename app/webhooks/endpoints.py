"""The webhook endpoints API (secret key): endpoints, their secrets, test messages, the attempt
log, resending a message."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from app.config import WebhookSettings
from app.crypto import SecretBox
from app.db import SessionDep
from app.openapi import BODY, SECRET_KEY_ERRORS, errors
from app.params import Text, UtcDateTime
from app.sites.dependencies import SecretSiteDep
from app.webhooks import service, signing
from app.webhooks.models import WebhookEndpoint
from app.webhooks.schemas import (
    DeliveryAttemptOut,
    MessageQueued,
    WebhookEndpointCreate,
    WebhookEndpointOut,
    WebhookEndpointUpdate,
    WebhookEndpointWithSecret,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=errors(*SECRET_KEY_ERRORS))

MessageId = Annotated[Text, Path(max_length=100, description="msg_<uuid>")]


def _settings(request: Request) -> WebhookSettings:
    settings: WebhookSettings = request.app.state.settings.webhooks
    return settings


def _box(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.secret_box
    return box


def _out(endpoint: WebhookEndpoint) -> dict[str, object]:
    return {
        "id": str(endpoint.id),
        "url": endpoint.url,
        "event_types": endpoint.event_types,
        "description": endpoint.description,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "disabled_at": endpoint.disabled_at,
        "consecutive_failures": endpoint.consecutive_failures,
        "failing_since": endpoint.failing_since,
        "previous_secret_until": endpoint.previous_secret_until,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
    }


@router.post("", status_code=201, response_model=WebhookEndpointWithSecret, responses=errors(BODY))
async def create_endpoint(
    body: WebhookEndpointCreate, site: SecretSiteDep, session: SessionDep, request: Request
) -> dict[str, object]:
    """Add an endpoint. The signing secret is in this answer only."""
    created = await service.create(session, site.id, body, _settings(request), _box(request))
    return {**_out(created.endpoint), "secret": created.secret}


@router.get("", response_model=list[WebhookEndpointOut])
async def list_endpoints(site: SecretSiteDep, session: SessionDep) -> list[dict[str, object]]:
    return [_out(e) for e in await service.list_for_site(session, site.id)]


@router.get("/{endpoint_id}", response_model=WebhookEndpointOut, responses=errors(404))
async def get_endpoint(
    endpoint_id: uuid.UUID, site: SecretSiteDep, session: SessionDep
) -> dict[str, object]:
    return _out(await service.get(session, site.id, endpoint_id))


@router.patch("/{endpoint_id}", response_model=WebhookEndpointOut, responses=errors(BODY, 404))
async def update_endpoint(
    endpoint_id: uuid.UUID,
    body: WebhookEndpointUpdate,
    site: SecretSiteDep,
    session: SessionDep,
    request: Request,
) -> dict[str, object]:
    """Change an endpoint; `enabled: true` re-enables one that was disabled automatically, and
    the messages kept for it meanwhile are sent."""
    endpoint = await service.get(session, site.id, endpoint_id)
    return _out(await service.change(session, endpoint, body, _settings(request)))


@router.delete("/{endpoint_id}", status_code=204, responses=errors(404))
async def delete_endpoint(
    endpoint_id: uuid.UUID, site: SecretSiteDep, session: SessionDep
) -> Response:
    endpoint = await service.get(session, site.id, endpoint_id)
    await session.delete(endpoint)
    return Response(status_code=204)


@router.post(
    "/{endpoint_id}/rotate", response_model=WebhookEndpointWithSecret, responses=errors(404)
)
async def rotate_secret(
    endpoint_id: uuid.UUID, site: SecretSiteDep, session: SessionDep, request: Request
) -> dict[str, object]:
    """A new signing secret (shown once); the old one also signs until previous_secret_until."""
    endpoint = await service.get(session, site.id, endpoint_id)
    rotated = await service.rotate(session, endpoint, _settings(request), _box(request))
    return {**_out(rotated.endpoint), "secret": rotated.secret}


@router.post(
    "/{endpoint_id}/test", status_code=202, response_model=MessageQueued, responses=errors(404, 409)
)
async def send_test(endpoint_id: uuid.UUID, site: SecretSiteDep, session: SessionDep) -> dict:
    """Queue a `webhook.test` event to this endpoint."""
    endpoint = await service.get(session, site.id, endpoint_id)
    message_id = await service.send_test(session, endpoint)
    return {"message_id": signing.message_id(message_id), "deliveries": 1}


@router.get(
    "/{endpoint_id}/deliveries", response_model=list[DeliveryAttemptOut], responses=errors(404)
)
async def list_attempts(
    endpoint_id: uuid.UUID,
    site: SecretSiteDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: UtcDateTime | None = None,
) -> list[dict[str, object]]:
    """Every delivery attempt to this endpoint, newest first (page with `before`)."""
    endpoint = await service.get(session, site.id, endpoint_id)
    rows = await service.attempts(session, endpoint, limit, before)
    return [
        {
            "id": a.id,
            "message_id": signing.message_id(a.message_id),
            "event_type": event_type,
            "delivery_status": status,
            "attempted_at": a.attempted_at,
            "status_code": a.status_code,
            "succeeded": a.succeeded,
            "response_body": a.response_body,
            "error": a.error,
            "duration_ms": a.duration_ms,
        }
        for a, event_type, status in rows
    ]


@router.post(
    "/messages/{message_id}/resend",
    status_code=202,
    response_model=MessageQueued,
    responses=errors(404),
)
async def resend_message(message_id: MessageId, site: SecretSiteDep, session: SessionDep) -> dict:
    """Send a message again, now, to every endpoint it was for."""
    count = await service.resend(session, site.id, service.parse_message_id(message_id))
    return {"message_id": message_id, "deliveries": count}
