"""NUL characters, which PostgreSQL's text and JSONB refuse: in a write key they make an unknown
key (401), in an event they reject that event by index; never a 5xx."""

import base64

import pytest

from tests.factories import basic_auth, stored_events, track


@pytest.mark.parametrize("where", ["basic", "body"])
async def test_a_write_key_with_nul_is_an_unknown_key(client, site, where):
    key = site.write_key + "\u0000"
    if where == "basic":
        auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
        r = await client.post("/v1/track", json=track("a", "X"), headers={"authorization": auth})
    else:
        r = await client.post("/v1/track", json=track("a", "X") | {"writeKey": key})
    assert r.status_code == 401, r.text
    assert r.json()["code"] == "unauthorized"
    assert "retry-after" not in r.headers


@pytest.mark.parametrize("field", ["anonymousId", "userId", "messageId", "event", "previousId"])
async def test_nul_in_an_id_or_name_rejects_that_event_only(client, session, site, field):
    bad = track("a", "X", "bad") | {field: "x\u0000y"}
    if field == "previousId":
        bad = {"type": "alias", "previousId": "x\u0000y", "userId": "u", "messageId": "bad"}
    r = await client.post(
        "/v1/batch",
        auth=basic_auth(site.write_key),
        json={"batch": [track("a", "X", "ok1"), bad, track("a", "X", "ok2")]},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert body["errors"][0]["index"] == 1
    assert "NUL" in body["errors"][0]["message"]
    assert [e.message_id for e in await stored_events(session, site.site.id)] == ["ok1", "ok2"]


async def test_a_single_call_with_nul_is_a_400(client, session, site):
    r = await client.post(
        "/v1/identify",
        auth=basic_auth(site.write_key),
        json={"userId": "u\u0000", "traits": {"email": "a@b.c"}},
    )
    assert r.status_code == 400
    assert r.json()["details"][0]["index"] == 0
    assert await stored_events(session, site.site.id) == []
