"""The sales dashboard (`/dashboard`, its assets, `/` leads there), the tracker script
(`/tracker.js`) and the API's documentation pages (`/docs`, `/redoc`).

The dashboard is static: its script signs in with the site's secret key and calls the leads
API, so these routes need no authentication and no database.
"""

import re

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from app.dashboard import api_docs
from app.dashboard.assets import DASHBOARD_DIR, TRACKER_PATH, StaticAsset, tracker_version
from app.errors import NotFound

router = APIRouter(include_in_schema=False)
router.include_router(api_docs.router)

IMMUTABLE = "public, max-age=31536000, immutable"
# Shops embed the plain `/tracker.js`: a day in caches, then revalidated (a 304 via the ETag),
# so a new tracker reaches every visitor within a day. Versioned URLs never change.
TRACKER_UNVERSIONED = "public, max-age=86400, stale-while-revalidate=604800"
REVALIDATE = "no-cache"
TRACKER_HEADERS = {
    # Shops may load it with `crossorigin` and Subresource Integrity.
    "Access-Control-Allow-Origin": "*",
    "Cross-Origin-Resource-Policy": "cross-origin",
    "X-Content-Type-Options": "nosniff",
}
DASHBOARD_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

TRACKER = StaticAsset.read(TRACKER_PATH)
TRACKER_VERSION = tracker_version(TRACKER)
ASSETS = {
    path.name: StaticAsset.read(path)
    for path in sorted(DASHBOARD_DIR.iterdir())
    if path.suffix in (".js", ".css", ".svg")
}
_ASSET_REF = re.compile(r"\{\{asset:([\w.-]+)\}\}")


def _render_page() -> StaticAsset:
    """index.html with every `{{asset:name}}` replaced by a URL versioned by content."""
    html = (DASHBOARD_DIR / "index.html").read_text()
    html = _ASSET_REF.sub(lambda m: asset_url(m.group(1)), html)
    html = html.replace("{{tracker_url}}", versioned_tracker_url())
    return StaticAsset(html.encode(), "text/html; charset=utf-8")


def asset_url(name: str) -> str:
    return f"/dashboard/assets/{name}?v={ASSETS[name].digest}"


def versioned_tracker_url() -> str:
    return f"/tracker/{TRACKER_VERSION}.js"


PAGE = _render_page()


@router.api_route("/tracker.js", methods=["GET", "HEAD"])
async def tracker(request: Request, v: str | None = None) -> Response:
    """The tracker. `?v=<version>` (the current one) is cached for a year."""
    current = v in (TRACKER_VERSION, TRACKER.digest)
    cache = IMMUTABLE if current else TRACKER_UNVERSIONED
    return TRACKER.response(request, cache, TRACKER_HEADERS)


@router.api_route("/tracker/{version}.js", methods=["GET", "HEAD"])
async def tracker_pinned(request: Request, version: str) -> Response:
    """The tracker at a version, cached for a year. Only the current build is kept: an older
    version redirects to it, so a shop that pinned a version keeps tracking after upgrades."""
    if version not in (TRACKER_VERSION, TRACKER.digest):
        return RedirectResponse(
            versioned_tracker_url(), status_code=307, headers={"Cache-Control": REVALIDATE}
        )
    return TRACKER.response(request, IMMUTABLE, TRACKER_HEADERS)


@router.api_route("/", methods=["GET", "HEAD"])
async def root(request: Request) -> Response:
    """A person who opens the service's address lands on the dashboard (behind a proxy that
    mounts Leadheat under a path, under that path)."""
    return RedirectResponse(
        f"{request.scope.get('root_path', '')}/dashboard",
        status_code=307,
        headers={"Cache-Control": REVALIDATE},
    )


@router.api_route("/dashboard", methods=["GET", "HEAD"])
async def dashboard(request: Request) -> Response:
    """The dashboard page; always revalidated, so a deploy shows its new assets at once."""
    return PAGE.response(request, REVALIDATE, DASHBOARD_HEADERS)


@router.api_route("/dashboard/assets/{name}", methods=["GET", "HEAD"])
async def dashboard_asset(request: Request, name: str, v: str | None = None) -> Response:
    asset = ASSETS.get(name)
    if asset is None:
        raise NotFound(f"No dashboard asset {name!r}.")
    cache = IMMUTABLE if v == asset.digest else REVALIDATE
    return asset.response(request, cache, {"X-Content-Type-Options": "nosniff"})
