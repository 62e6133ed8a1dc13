"""The settings documents that tracking libraries fetch before they send anything.

Segment's browser library (analytics-next) loads `{cdnURL}/v1/projects/{writeKey}/settings`
and RudderStack's browser SDK (v3) loads `{configUrl}/sourceConfig/?writeKey=...`. With either
pointed at Leadheat, the document sends the library's events back here and names no other
destination, so nothing on the shop's page loads from a third party.
"""

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from app.errors import NotFound
from app.http import JSONResponse, header
from app.ingestion.endpoints import basic_write_key, cors_headers
from app.openapi import WRITE_KEY, errors
from app.sites.service import SiteRef, WriteKeyCache

router = APIRouter(tags=["ingestion"])


class SegmentSettings(BaseModel):
    """The parts of Segment's CDN settings that analytics-next reads; the Segment.io
    destination is the only integration, aimed at this service."""

    integrations: dict[str, dict[str, Any]] = Field(
        examples=[
            {
                "Segment.io": {
                    "apiKey": "wk_...",
                    "apiHost": "leadheat.example.com/v1",
                    "protocol": "https",
                }
            }
        ]
    )
    plan: dict[str, Any]
    metrics: dict[str, Any]
    remotePlugins: list[Any]  # noqa: N815 (Segment's field names)
    middlewareSettings: dict[str, Any]  # noqa: N815
    enabledMiddleware: dict[str, Any]  # noqa: N815
    edgeFunction: dict[str, Any]  # noqa: N815
    analyticsNextEnabled: bool  # noqa: N815
    legacyVideoPluginsEnabled: bool  # noqa: N815


class RudderSource(BaseModel):
    id: str
    name: str
    writeKey: str  # noqa: N815 (RudderStack's field names)
    workspaceId: str  # noqa: N815
    enabled: bool
    config: dict[str, Any]
    destinations: list[Any]


class RudderStackSourceConfig(BaseModel):
    """What RudderStack's browser SDK needs from its control plane: an enabled source with no
    device-mode destinations (every event goes to the data plane, here)."""

    isHosted: bool  # noqa: N815
    source: RudderSource


async def _site(request: Request, write_key: str | None) -> SiteRef:
    cache: WriteKeyCache = request.app.state.write_keys
    site = await cache.get(write_key) if write_key else None
    if site is None:
        raise NotFound("No site has this write key.", code="unknown_write_key")
    return site


def _answer(request: Request, site: SiteRef, body: dict[str, Any]) -> Response:
    """The library reads the document from the shop's page: CORS for the site's origins."""
    origin = header(request, b"origin")
    headers = {"Vary": "Origin", "Cache-Control": "public, max-age=300"}
    if origin and site.allows_origin(origin):
        headers["Access-Control-Allow-Origin"] = origin
    return JSONResponse(body, headers=headers)


def _here(request: Request) -> tuple[str, str]:
    """This service's scheme and `host[:port][/root path]`, as the client reached it (behind a
    proxy, uvicorn's --proxy-headers supplies the original scheme and host)."""
    base = str(request.base_url).rstrip("/")
    scheme, _, rest = base.partition("://")
    return scheme, rest


@router.get(
    "/v1/projects/{write_key}/settings",
    response_model=SegmentSettings,
    responses=errors(404, 503),
    summary="Settings for Segment's browser library",
)
async def segment_settings(request: Request, write_key: str) -> Response:
    """For analytics-next loaded with `cdnURL` set to this service: its Segment.io destination
    posts to this service's `/v1`, and no other integration or plugin loads."""
    site = await _site(request, write_key)
    scheme, host = _here(request)
    body = {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": f"{host}/v1",
                "protocol": scheme,
                "unbundledIntegrations": [],
                "addBundledMetadata": True,
                "maybeBundledConfigIds": {},
            }
        },
        "plan": {"track": {"__default": {"enabled": True, "integrations": {}}}},
        # The library's own error telemetry would go to Segment: off.
        "metrics": {"sampleRate": 0},
        "remotePlugins": [],
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "legacyVideoPluginsEnabled": False,
    }
    return _answer(request, site, body)


@router.get(
    "/sourceConfig",
    response_model=RudderStackSourceConfig,
    responses=errors(401, 404, 503),
    summary="Source configuration for RudderStack's browser SDK",
    openapi_extra=WRITE_KEY,
)
@router.get("/sourceConfig/", include_in_schema=False)
async def rudderstack_source_config(
    request: Request,
    write_key: str | None = Query(None, alias="writeKey", description="The site's write key"),
) -> Response:
    """For RudderStack's JavaScript SDK (v3) loaded with `configUrl` set to this service (and
    `dataPlaneUrl` too): an enabled source with no device-mode destinations. The SDK sends the
    write key as HTTP Basic and in the query."""
    key = basic_write_key(request) or write_key
    site = await _site(request, key)
    body = {
        "isHosted": False,
        "source": {
            "id": str(site.id),
            "name": "Leadheat",
            "writeKey": key,
            "workspaceId": str(site.id),
            "enabled": True,
            "config": {},
            "destinations": [],
        },
    }
    return _answer(request, site, body)


async def preflight(request: Request) -> Response:
    """RudderStack's SDK fetches its source config with an Authorization header: preflighted."""
    headers = {
        "Access-Control-Allow-Methods": "GET, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization",
        "Access-Control-Max-Age": "86400",
    }
    return Response(status_code=204, headers=headers | cors_headers(request))


for _path in ("/sourceConfig", "/sourceConfig/"):
    router.add_api_route(_path, preflight, methods=["OPTIONS"], include_in_schema=False)
