"""The settings documents that Segment's and RudderStack's browser libraries load first: they
point the library back at this service, as the client reached it, for the site's origins."""

import base64

import httpx
import pytest

from tests.factories import create_site


@pytest.fixture
def site_origins() -> list[str]:
    return ["https://shop.example"]


async def test_segment_settings_point_the_library_here(live_server, site):
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        r = await http.get(
            f"/v1/projects/{site.write_key}/settings", headers={"origin": "https://shop.example"}
        )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://shop.example"
    body = r.json()
    segment_io = body["integrations"]["Segment.io"]
    host = live_server.url.removeprefix("http://")
    assert (segment_io["apiKey"], segment_io["apiHost"], segment_io["protocol"]) == (
        site.write_key,
        f"{host}/v1",
        "http",
    )
    assert list(body["integrations"]) == ["Segment.io"]  # nothing else loads on the page
    assert body["remotePlugins"] == []
    assert body["metrics"]["sampleRate"] == 0


async def test_segment_settings_name_the_host_the_client_used(live_server, site):
    """Behind a proxy that keeps the Host header, the library is sent to the proxy."""
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        r = await http.get(
            f"/v1/projects/{site.write_key}/settings", headers={"host": "track.shop.example:8443"}
        )
    assert r.json()["integrations"]["Segment.io"]["apiHost"] == "track.shop.example:8443/v1"


async def test_an_origin_the_site_does_not_list_gets_no_cors_header(live_server, site):
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        r = await http.get(
            f"/v1/projects/{site.write_key}/settings", headers={"origin": "https://evil.example"}
        )
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize(
    "path", ["/v1/projects/wk_unknown/settings", "/sourceConfig/?writeKey=wk_unknown"]
)
async def test_an_unknown_write_key_is_a_404_in_the_error_shape(live_server, path):
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        r = await http.get(path)
    assert r.status_code == 404
    assert r.json()["code"] == "unknown_write_key"


@pytest.mark.parametrize("by", ["query", "basic"])
async def test_rudderstack_source_config_is_an_enabled_source_without_destinations(
    live_server, session, by
):
    site = await create_site(session, origins=["https://shop.example"])
    params = {"writeKey": site.write_key, "p": "npm", "v": "3.34.1"} if by == "query" else {}
    token = base64.b64encode(f"{site.write_key}:".encode()).decode()
    headers = {"origin": "https://shop.example"}
    if by == "basic":
        headers["authorization"] = f"Basic {token}"
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        preflight = await http.options(
            "/sourceConfig/",
            headers={
                "origin": "https://shop.example",
                "access-control-request-method": "GET",
                "access-control-request-headers": "authorization",
            },
        )
        r = await http.get("/sourceConfig/", params=params, headers=headers)
    assert preflight.status_code == 204
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://shop.example"
    source = r.json()["source"]
    assert (source["enabled"], source["destinations"], source["writeKey"]) == (
        True,
        [],
        site.write_key,
    )
