"""`/docs` (Swagger UI) and `/redoc` (ReDoc) with no internet.

Their files come from the fastapi-offline package (it ships Swagger UI's and ReDoc's builds)
and are served from memory like the dashboard's (gzipped, ETags, a year of caching under a
versioned URL). A Content-Security-Policy keeps the pages from loading anything from
elsewhere: ReDoc's side menu asks its CDN for a logo otherwise.
"""

from functools import cache
from importlib import metadata
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import Response

from app.dashboard.assets import StaticAsset
from app.errors import NotFound

router = APIRouter(include_in_schema=False)

ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
NAMES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
# The files change only with the package: its version versions their URLs.
VERSION = metadata.version("fastapi-offline")
IMMUTABLE = "public, max-age=31536000, immutable"
# Inline script and styles: FastAPI's page starts Swagger UI with an inline script, and both
# UIs style themselves at run time. ReDoc's search runs in a worker made from a blob.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline';"
        " img-src 'self' data:; font-src 'self' data:; connect-src 'self';"
        " worker-src 'self' blob:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@cache
def _asset(name: str) -> StaticAsset:
    # Read on first use, not at import: the server processes of an API nobody browses skip it.
    return StaticAsset.read(ASSETS_DIR / name)


def _url(request: Request, name: str) -> str:
    return f"{request.scope.get('root_path', '')}/docs/assets/{name}?v={VERSION}"


def _openapi_url(request: Request) -> str:
    return f"{request.scope.get('root_path', '')}{request.app.openapi_url}"


@router.get("/docs")
async def swagger_ui(request: Request) -> Response:
    page = get_swagger_ui_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} API",
        swagger_js_url=_url(request, "swagger-ui-bundle.js"),
        swagger_css_url=_url(request, "swagger-ui.css"),
        swagger_favicon_url=_url(request, "favicon.png"),
        oauth2_redirect_url=None,  # no OAuth2 flow: keys and personal tokens
        swagger_ui_parameters=request.app.swagger_ui_parameters,
    )
    page.headers.update(PAGE_HEADERS)
    return page


@router.get("/redoc")
async def redoc(request: Request) -> Response:
    page = get_redoc_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} API",
        redoc_js_url=_url(request, "redoc.standalone.js"),
        redoc_favicon_url=_url(request, "favicon.png"),
        with_google_fonts=False,
    )
    page.headers.update(PAGE_HEADERS)
    return page


@router.api_route("/docs/assets/{name}", methods=["GET", "HEAD"])
async def docs_asset(request: Request, name: str, v: str | None = None) -> Response:
    if name not in NAMES:
        raise NotFound(f"No documentation asset {name!r}.")
    cache_control = IMMUTABLE if v == VERSION else "no-cache"
    return _asset(name).response(request, cache_control, {"X-Content-Type-Options": "nosniff"})
