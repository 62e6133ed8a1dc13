"""The tracker script and the dashboard's files: caching, ETags, versioned URLs, headers."""

import re

import pytest

from app.dashboard.endpoints import TRACKER_VERSION


@pytest.fixture
def tracker_bytes(repo_root) -> bytes:
    return (repo_root / "app" / "static" / "tracker.js").read_bytes()


def max_age(response) -> int:
    found = re.search(r"max-age=(\d+)", response.headers["cache-control"])
    assert found, response.headers["cache-control"]
    return int(found.group(1))


async def test_tracker_js_is_the_built_tracker_with_a_day_of_caching(client, tracker_bytes):
    r = await client.get("/tracker.js")
    assert r.status_code == 200
    assert r.content == tracker_bytes
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["cache-control"].startswith("public")
    assert max_age(r) == 86400
    assert r.headers["etag"].startswith('"')
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_the_version_comes_from_the_tracker_build(repo_root):
    package = (repo_root / "tracker" / "package.json").read_text()
    assert f'"version": "{TRACKER_VERSION}"' in package


@pytest.mark.parametrize(
    "path", [f"/tracker.js?v={TRACKER_VERSION}", f"/tracker/{TRACKER_VERSION}.js"]
)
async def test_versioned_urls_are_cached_for_a_year(client, tracker_bytes, path):
    r = await client.get(path)
    assert r.status_code == 200
    assert r.content == tracker_bytes
    assert max_age(r) == 31536000
    assert "immutable" in r.headers["cache-control"]


async def test_an_unknown_version_in_the_query_is_not_cached_for_long(client):
    r = await client.get("/tracker.js?v=0.0.0-old")
    assert r.status_code == 200
    assert "immutable" not in r.headers["cache-control"]


async def test_a_pinned_old_version_redirects_to_the_current_one(client):
    r = await client.get("/tracker/0.0.1.js")
    assert r.status_code == 307
    assert r.headers["location"] == f"/tracker/{TRACKER_VERSION}.js"
    assert r.headers["cache-control"] == "no-cache"


async def test_if_none_match_answers_304_without_a_body(client):
    etag = (await client.get("/tracker.js")).headers["etag"]
    r = await client.get("/tracker.js", headers={"if-none-match": f'"other", W/{etag}'})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == etag
    assert max_age(r) == 86400
    changed = await client.get("/tracker.js", headers={"if-none-match": '"other"'})
    assert changed.status_code == 200


async def test_gzip_when_accepted_with_its_own_etag(client, tracker_bytes):
    plain = await client.get("/tracker.js", headers={"accept-encoding": "identity"})
    zipped = await client.get("/tracker.js", headers={"accept-encoding": "gzip, br"})
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == tracker_bytes  # httpx decodes it
    assert int(zipped.headers["content-length"]) < len(tracker_bytes) / 2
    assert zipped.headers["etag"] != plain.headers["etag"]
    assert zipped.headers["vary"] == "Accept-Encoding"
    again = await client.get(
        "/tracker.js", headers={"accept-encoding": "gzip", "if-none-match": zipped.headers["etag"]}
    )
    assert again.status_code == 304


async def test_head_answers_the_headers(client):
    r = await client.head("/tracker.js")
    assert r.status_code == 200
    assert r.headers["etag"]


async def test_the_dashboard_page_is_revalidated_and_locked_down(client):
    r = await client.get("/dashboard")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-cache"
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "{{" not in r.text
    assert f"/tracker/{TRACKER_VERSION}.js" in r.text
    assert 'data-testid="secret-key"' in r.text


async def test_dashboard_assets_are_versioned_by_content(client):
    page = (await client.get("/dashboard")).text
    urls = re.findall(r'(?:src|href)="(/dashboard/assets/[^"]+)"', page)
    assert len(urls) == 8  # two stylesheets and six scripts
    for url in urls:
        r = await client.get(url)
        assert r.status_code == 200, url
        assert "immutable" in r.headers["cache-control"]
        unversioned = await client.get(url.split("?")[0])
        assert unversioned.headers["cache-control"] == "no-cache"
        assert unversioned.headers["etag"] == r.headers["etag"]


async def test_an_unknown_asset_is_a_json_404(client):
    r = await client.get("/dashboard/assets/secrets.txt")
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"


async def test_the_secret_key_travels_in_a_header_and_stays_in_session_storage(client):
    script = (await client.get("/dashboard/assets/api.js")).text
    assert "headers.Authorization = 'Bearer ' + secret" in script
    assert "sessionStorage.setItem" in script
    assert "localStorage" not in script
