"""/docs and /redoc work with no internet: every file their pages load is Leadheat's own (the
fastapi-offline package's Swagger UI and ReDoc), answered with its content type, and their
Content-Security-Policy lets them load nothing from elsewhere; `/` takes a person to the
dashboard."""

import re

import httpx
import pytest

from tests.conftest import LiveServer

CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
    ".json": ("application/json",),
}
# Every URL a page names: attributes, and Swagger UI's `url: '...'` for the document.
URL_REFERENCES = re.compile(r"""(?:src|href|spec-url)="([^"]+)"|\burl: '([^']+)'""")


def _referenced_urls(html: str) -> list[str]:
    return [a or b for a, b in URL_REFERENCES.findall(html)]


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png", "openapi.json"}),
        ("/redoc", {"redoc.standalone.js", "favicon.png", "openapi.json"}),
    ],
)
def test_docs_pages_load_only_leadheats_own_files(
    live_server: LiveServer, page: str, expected: set[str]
) -> None:
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        html = client.get(page)
        assert html.status_code == 200
        assert html.headers["content-type"].startswith("text/html")
        assert "//" not in html.text, html.text  # nothing absolute: no CDN, no web fonts
        policy = html.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        sources = {source for directive in policy.split(";") for source in directive.split()[1:]}
        # Only 'self' (and inline data: images, blob: workers): no other host.
        assert sources <= {"'self'", "'none'", "'unsafe-inline'", "data:", "blob:"}, policy
        urls = _referenced_urls(html.text)
        paths = [url.split("?")[0] for url in urls]
        assert {path.rsplit("/", 1)[-1] for path in paths} == expected
        for url, path in zip(urls, paths, strict=True):
            assert url.startswith("/"), url
            answer = client.get(url)
            assert answer.status_code == 200, url
            suffix = path[path.rindex(".") :]
            assert answer.headers["content-type"].startswith(CONTENT_TYPES[suffix]), url
            assert len(answer.content) > 1000, url  # the real file, not a stub
            if path.startswith("/docs/assets/"):  # versioned: cached for a year
                assert "immutable" in answer.headers["cache-control"], url


async def test_an_unknown_docs_asset_is_a_404_in_the_error_shape(client: httpx.AsyncClient):
    r = await client.get("/docs/assets/..%2F..%2Fcore.py")
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"


async def test_the_root_redirects_to_the_dashboard(client: httpx.AsyncClient) -> None:
    r = await client.get("/")
    assert r.status_code == 307
    assert r.headers["location"] == "/dashboard"
    assert r.headers["cache-control"] == "no-cache"
    followed = await client.get("/", follow_redirects=True)
    assert followed.status_code == 200
    assert followed.url.path == "/dashboard"
    assert 'data-testid="secret-key"' in followed.text


async def test_the_root_redirect_keeps_a_proxys_path_prefix(app) -> None:
    transport = httpx.ASGITransport(app=app, root_path="/leadheat")
    async with httpx.AsyncClient(transport=transport, base_url="http://leadheat.test") as c:
        r = await c.get("/")
    assert r.status_code == 307
    assert r.headers["location"] == "/leadheat/dashboard"
