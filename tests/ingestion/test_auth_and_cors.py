"""Write keys the Segment way, and CORS for the shop's pages."""

import asyncio
import base64

import httpx
import pytest

from app.db import make_sessionmaker
from app.sites.service import WriteKeyCache
from tests.factories import basic_auth, create_site, stored_events, track


@pytest.fixture
def site_origins() -> list[str]:
    return ["https://shop.example"]


async def test_write_key_as_basic_user_name(client, session, site):
    r = await client.post("/v1/track", auth=basic_auth(site.write_key), json=track("a", "X"))
    assert r.status_code == 200
    assert len(await stored_events(session, site.site.id)) == 1


async def test_write_key_in_the_body(client, session, site):
    r = await client.post("/v1/track", json=track("a", "X") | {"writeKey": site.write_key})
    assert r.status_code == 200
    assert r.json()["accepted"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Basic " + base64.b64encode(b"wk_nope:").decode()},
        {"authorization": "Basic !!!"},
        {"authorization": "Bearer something"},
    ],
)
async def test_a_wrong_or_missing_key_is_a_401_with_a_json_body(client, session, site, headers):
    r = await client.post("/v1/batch", json={"batch": [track("a", "X")]}, headers=headers)
    assert r.status_code == 401
    assert r.json()["code"] == "unauthorized"
    assert r.json()["message"]
    assert await stored_events(session, site.site.id) == []


async def test_the_secret_key_is_not_a_write_key(client, site):
    r = await client.post("/v1/track", auth=basic_auth(site.secret_key), json=track("a", "X"))
    assert r.status_code == 401


async def test_preflight_is_answered_for_the_ingestion_paths(client):
    r = await client.options(
        "/v1/batch",
        headers={
            "origin": "https://shop.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "https://shop.example"
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "content-type" in r.headers["access-control-allow-headers"].lower()


@pytest.mark.parametrize("path", ["/v1/t", "/v1/b", "/v1/track", "/v1/batch"])
@pytest.mark.parametrize(
    "requested",
    [
        "authorization,content-type,x-retry-count",  # Segment's analytics-next, retrying
        "anonymousid,authorization,content-type,sentat",  # RudderStack's browser SDK...
        "anonymousid,authorization,content-type,rsa-retry-attempt,rsa-retry-reason,"
        "rsa-since-first-attempt,rsa-since-last-attempt,sentat",  # ...retrying
    ],
)
async def test_preflight_allows_the_headers_real_clients_send(client, path, requested):
    r = await client.options(
        path,
        headers={
            "origin": "https://shop.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": requested,
        },
    )
    assert r.status_code == 204
    allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert set(requested.split(",")) <= allowed


@pytest.mark.parametrize(
    ("short", "call"),
    [("t", "track"), ("p", "page"), ("s", "screen"), ("i", "identify"), ("g", "group")],
)
async def test_segment_short_paths_are_the_single_calls(client, session, site, short, call):
    message = track("a", "X", f"short-{short}") | {"type": call}
    if call in ("identify", "group"):
        message |= {"userId": "u1", "traits": {"name": "N"}, "groupId": "g1"}
    r = await client.post(f"/v1/{short}", auth=basic_auth(site.write_key), json=message)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1
    [event] = await stored_events(session, site.site.id)
    assert (event.type, event.message_id) == (call, f"short-{short}")


async def test_segment_short_batch_path_and_alias(client, session, site):
    alias = {"type": "alias", "previousId": "a", "userId": "u1", "messageId": "short-a"}
    r = await client.post("/v1/a", auth=basic_auth(site.write_key), json=alias)
    assert r.status_code == 200, r.text
    batch = {"batch": [track("a", "X", "short-b1"), track("a", "Y", "short-b2")]}
    r = await client.post("/v1/b", auth=basic_auth(site.write_key), json=batch)
    assert r.json()["accepted"] == 2
    stored = [(e.type, e.message_id) for e in await stored_events(session, site.site.id)]
    assert stored == [("alias", "short-a"), ("track", "short-b1"), ("track", "short-b2")]


async def test_an_allowed_origin_gets_cors_headers(client, site):
    r = await client.post(
        "/v1/batch",
        json={"batch": [track("a", "X")], "writeKey": site.write_key},
        headers={"origin": "https://shop.example"},
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://shop.example"
    assert r.headers["vary"] == "Origin"


async def test_an_origin_the_site_does_not_list_is_refused(client, session, site):
    r = await client.post(
        "/v1/batch",
        json={"batch": [track("a", "X")], "writeKey": site.write_key},
        headers={"origin": "https://evil.example"},
    )
    assert r.status_code == 403
    assert r.json()["code"] == "origin_not_allowed"
    assert await stored_events(session, site.site.id) == []


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1/track", {"type": "track"}, 400),  # not a valid call
        ("/v1/batch", {"batch": [], "writeKey": "wk_nope"}, 401),
        ("/v1/b", b"a=1", 415),
    ],
)
async def test_error_answers_carry_cors_headers_so_the_page_can_read_them(
    live_server, site, path, body, status
):
    """Else a browser library sees a network failure, and retries what will never pass."""
    headers = {"origin": "https://shop.example"}
    if status != 401:
        headers["authorization"] = (
            "Basic " + base64.b64encode(f"{site.write_key}:".encode()).decode()
        )
    if isinstance(body, bytes):
        headers["content-type"] = "application/x-www-form-urlencoded"
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        r = await http.post(
            path,
            headers=headers,
            **({"content": body} if isinstance(body, bytes) else {"json": body}),
        )
    assert r.status_code == status
    assert r.headers["access-control-allow-origin"] == "https://shop.example"
    assert r.json()["code"]


async def test_a_site_without_origins_accepts_any(client, session):
    open_site = await create_site(session, origins=[])
    r = await client.post(
        "/v1/track",
        auth=basic_auth(open_site.write_key),
        json=track("a", "X"),
        headers={"origin": "https://anything.example"},
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://anything.example"


async def test_requests_that_find_a_key_expired_share_one_query(db_engine, site):
    sessions = make_sessionmaker(db_engine)
    opened = 0

    def counting_sessions():  # the real sessionmaker, counted
        nonlocal opened
        opened += 1
        return sessions()

    cache = WriteKeyCache(counting_sessions, ttl_seconds=60)  # type: ignore[arg-type]
    found = await asyncio.gather(*(cache.get(site.write_key) for _ in range(20)))
    assert opened == 1
    assert {ref.id for ref in found if ref is not None} == {site.site.id}
    assert await cache.get(site.write_key) == found[0]  # then from memory
    assert opened == 1
    assert await cache.get("wk_unknown") is None
    assert opened == 2
