"""Static files served from memory: the tracker and the dashboard's own assets.

Each file is read once, hashed (the ETag) and gzipped; a request is answered with the gzipped
bytes when the client accepts them, and with 304 when its `If-None-Match` names the ETag.
"""

import gzip
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

APP_DIR = Path(__file__).resolve().parent.parent
TRACKER_PATH = APP_DIR / "static" / "tracker.js"
DASHBOARD_DIR = Path(__file__).resolve().parent / "static"

MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# The build writes `/*! leadheat.js 0.1.0 */` as the tracker's first line.
_TRACKER_BANNER = re.compile(rb"/\*! leadheat\.js ([0-9A-Za-z.+-]+) \*/")


@dataclass(frozen=True)
class StaticAsset:
    body: bytes
    media_type: str
    digest: str = field(init=False)
    gzipped: bytes = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", hashlib.sha256(self.body).hexdigest()[:16])
        object.__setattr__(self, "gzipped", gzip.compress(self.body, 9, mtime=0))

    @classmethod
    def read(cls, path: Path) -> "StaticAsset":
        return cls(path.read_bytes(), MEDIA_TYPES.get(path.suffix, "application/octet-stream"))

    def etag(self, encoding: str) -> str:
        # A strong ETag names exact bytes, so the gzipped body has its own.
        return f'"{self.digest}{"-gz" if encoding == "gzip" else ""}"'

    def response(
        self, request: Request, cache_control: str, headers: dict[str, str] | None = None
    ) -> Response:
        """The asset, gzipped when accepted, or 304 when the client's copy is current."""
        accepts_gzip = "gzip" in request.headers.get("accept-encoding", "").lower()
        encoding = "gzip" if accepts_gzip else "identity"
        etag = self.etag(encoding)
        common = {"ETag": etag, "Cache-Control": cache_control, "Vary": "Accept-Encoding"}
        common.update(headers or {})
        if _matches(request.headers.get("if-none-match"), etag, self.etag("identity")):
            return Response(status_code=304, headers=common)
        if encoding == "gzip":
            common["Content-Encoding"] = "gzip"
        body = self.gzipped if encoding == "gzip" else self.body
        return Response(body, media_type=self.media_type, headers=common)


def _matches(if_none_match: str | None, *etags: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    # Weak comparison (RFC 9110): proxies may weaken an ETag, e.g. after recompressing.
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return any(etag in candidates for etag in etags)


def tracker_version(asset: StaticAsset) -> str:
    """The tracker's version from its banner; the content hash if the banner is missing."""
    found = _TRACKER_BANNER.search(asset.body[:200])
    return found.group(1).decode() if found else asset.digest
