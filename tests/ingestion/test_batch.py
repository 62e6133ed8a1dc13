"""POST /v1/batch: per-event validation, counts, idempotency, limits."""

import gzip

import orjson
import pytest

from app.ingestion.schemas import IngestResponse
from tests.factories import basic_auth, create_site, stored_events, track


async def test_batch_stores_good_events_and_reports_bad_ones_by_index(client, session, site):
    response = await client.post(
        "/v1/batch",
        auth=basic_auth(site.write_key),
        json={
            "batch": [
                track("a1", "Product Viewed", "m1", properties={"category": "fridges"}),
                {"type": "track", "anonymousId": "a1"},  # no event name
                {"type": "page", "name": "Home"},  # no id at all
                "not an object",
                {"type": "teleport", "anonymousId": "a1"},
                track("a1", "Something We Never Heard Of", "m2"),
            ]
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 2
    assert body["rejected"] == 4
    assert body["duplicates"] == 0
    assert [e["index"] for e in body["errors"]] == [1, 2, 3, 4]
    assert "event" in body["errors"][0]["message"]
    assert "anonymousId" in body["errors"][1]["message"]
    assert all(e["code"] == "invalid_event" for e in body["errors"])
    # The answer is what the OpenAPI schema documents, field for field.
    assert IngestResponse.model_validate(body).model_dump() == body
    events = await stored_events(session, site.site.id)
    assert [(e.message_id, e.name) for e in events] == [
        ("m1", "Product Viewed"),
        ("m2", "Something We Never Heard Of"),
    ]
    assert events[0].properties == {"category": "fridges"}


async def test_numeric_ids_are_strings_and_booleans_are_not_ids(client, session, site):
    response = await client.post(
        "/v1/batch",
        auth=basic_auth(site.write_key),
        json={
            "batch": [
                {"type": "track", "event": "X", "anonymousId": 42, "messageId": 7.5},
                {"type": "track", "event": "X", "userId": True, "messageId": "m2"},
                {"type": "alias", "previousId": 42, "messageId": "m3"},  # no userId
                {"type": "group", "anonymousId": "a", "messageId": "m4"},  # no groupId
            ]
        },
    )
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 3)
    assert [e["index"] for e in body["errors"]] == [1, 2, 3]
    assert "userId" in body["errors"][0]["message"]
    assert "'previousId' and 'userId'" in body["errors"][1]["message"]
    assert "groupId" in body["errors"][2]["message"]
    [event] = await stored_events(session, site.site.id)
    assert (event.anonymous_id, event.message_id) == ("42", "7.5")


async def test_repeated_message_ids_are_stored_once(client, session, site):
    batch = {
        "batch": [track("a1", "Product Added", "dup-1"), track("a1", "Product Added", "dup-1")]
    }
    first = await client.post("/v1/batch", auth=basic_auth(site.write_key), json=batch)
    assert first.json() | {"errors": None} == {
        "success": True,
        "accepted": 1,
        "duplicates": 1,
        "rejected": 0,
        "bots": 0,
        "errors": None,
    }
    retry = await client.post("/v1/batch", auth=basic_auth(site.write_key), json=batch)
    assert retry.json()["accepted"] == 0
    assert retry.json()["duplicates"] == 2
    assert len(await stored_events(session, site.site.id)) == 1


async def test_message_ids_are_unique_per_site_not_globally(client, session, site):
    other = await create_site(session, "Other shop")
    for s in (site, other):
        r = await client.post(
            "/v1/track", auth=basic_auth(s.write_key), json=track("a", "X", "same")
        )
        assert r.json()["accepted"] == 1


async def test_an_event_without_message_id_gets_one(client, session, site):
    r = await client.post(
        "/v1/batch", auth=basic_auth(site.write_key), json={"batch": [track("a1", "X")]}
    )
    assert r.json()["accepted"] == 1
    [event] = await stored_events(session, site.site.id)
    assert len(event.message_id) == 36


async def test_malformed_json_is_a_400_with_code_and_message(client, site):
    r = await client.post(
        "/v1/batch",
        auth=basic_auth(site.write_key),
        content=b'{"batch": [',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_json"
    assert r.json()["message"]


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"[1, 2]", "invalid_json"), (b'{"batch": 3}', "invalid_batch"), (b"", "invalid_json")],
)
async def test_a_body_that_is_not_a_batch_is_a_400(client, site, body, code):
    r = await client.post("/v1/batch", auth=basic_auth(site.write_key), content=body)
    assert r.status_code == 400
    assert r.json()["code"] == code


async def test_text_plain_bodies_are_accepted_as_json(client, session, site):
    body = orjson.dumps({"batch": [track("a1", "X", "tp-1")], "writeKey": site.write_key})
    r = await client.post(
        "/v1/batch", content=body, headers={"content-type": "text/plain;charset=UTF-8"}
    )
    assert r.status_code == 200
    assert r.json()["accepted"] == 1


async def test_other_content_types_are_refused(client, site):
    r = await client.post(
        "/v1/batch",
        auth=basic_auth(site.write_key),
        content=b"batch=1",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415
    assert r.json()["code"] == "unsupported_media_type"


async def test_gzip_bodies_are_decompressed(client, session, site):
    body = gzip.compress(orjson.dumps({"batch": [track("a1", "X", "gz-1")]}))
    r = await client.post(
        "/v1/batch",
        auth=basic_auth(site.write_key),
        content=body,
        headers={"content-encoding": "gzip", "content-type": "application/json"},
    )
    assert r.status_code == 200
    assert r.json()["accepted"] == 1


@pytest.mark.parametrize(
    "label", ["application/x-www-form-urlencoded", "application/octet-stream", "text/html"]
)
async def test_a_gzipped_body_is_read_as_json_whatever_its_label(client, session, site, label):
    """RudderStack's Node SDK gzips JSON and axios labels the bytes form-urlencoded."""
    body = gzip.compress(orjson.dumps({"batch": [track("a1", "X", f"gz-{label}")]}))
    r = await client.post(
        "/v1/batch",
        auth=basic_auth(site.write_key),
        content=body,
        headers={"content-encoding": "gzip", "content-type": label},
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1
    assert [e.message_id for e in await stored_events(session, site.site.id)] == [f"gz-{label}"]


async def test_corrupt_gzip_is_a_400(client, site):
    r = await client.post(
        "/v1/batch",
        auth=basic_auth(site.write_key),
        content=b"\x1f\x8b\x08\x00garbage",
        headers={"content-encoding": "gzip"},
    )
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_gzip"


async def test_a_gzip_bomb_is_refused_without_inflating_it(client, site):
    bomb = gzip.compress(b'{"batch": [' + b" " * (50 * 1024 * 1024) + b"]}")
    assert len(bomb) < 100 * 1024
    r = await client.post(
        "/v1/batch",
        auth=basic_auth(site.write_key),
        content=bomb,
        headers={"content-encoding": "gzip"},
    )
    assert r.status_code == 413
    assert r.json()["code"] == "payload_too_large"


async def test_requests_over_500_kb_are_413(client, session, site):
    events = [track("a1", "X", f"big-{i}", properties={"pad": "x" * 20_000}) for i in range(30)]
    r = await client.post("/v1/batch", auth=basic_auth(site.write_key), json={"batch": events})
    assert r.status_code == 413
    assert await stored_events(session, site.site.id) == []


async def test_an_event_over_32_kb_is_rejected_alone_in_a_batch(client, session, site):
    events = [
        track("a1", "X", "small"),
        track("a1", "X", "huge", properties={"pad": "x" * 33_000}),
    ]
    r = await client.post("/v1/batch", auth=basic_auth(site.write_key), json={"batch": events})
    assert r.status_code == 200
    assert r.json()["accepted"] == 1
    assert r.json()["errors"][0]["index"] == 1
    assert r.json()["errors"][0]["code"] == "event_too_large"


async def test_a_single_call_over_32_kb_is_413(client, site):
    r = await client.post(
        "/v1/track",
        auth=basic_auth(site.write_key),
        json=track("a1", "X", properties={"pad": "x" * 33_000}),
    )
    assert r.status_code == 413
    assert r.json()["code"] == "event_too_large"


async def test_nul_characters_are_rejected_not_a_500(client, session, site):
    events = [track("a1", "X", "nul", properties={"name": "a\u0000b"}), track("a1", "X", "ok")]
    r = await client.post("/v1/batch", auth=basic_auth(site.write_key), json={"batch": events})
    assert r.status_code == 200
    assert r.json()["accepted"] == 1
    assert "NUL" in r.json()["errors"][0]["message"]


async def test_an_empty_user_id_is_no_user_id(client, session, site):
    """RudderStack's browser SDK sends `"userId": ""` until the visitor is identified."""
    event = track("rs-anon", "Product Viewed", "empty-uid") | {"userId": ""}
    r = await client.post("/v1/track", auth=basic_auth(site.write_key), json=event)
    assert r.status_code == 200, r.text
    [stored] = await stored_events(session, site.site.id)
    assert (stored.anonymous_id, stored.user_id) == ("rs-anon", None)
    no_one = {"type": "track", "event": "X", "userId": "", "anonymousId": ""}
    r = await client.post("/v1/track", auth=basic_auth(site.write_key), json=no_one)
    assert r.status_code == 400
    assert "anonymousId" in r.json()["message"]


async def test_an_identify_with_its_traits_in_the_context_keeps_them(client, session, site):
    """RudderStack's browser SDK sends identify's traits as `context.traits`."""
    identify = {
        "type": "identify",
        "messageId": "ctx-traits",
        "userId": "u1",
        "anonymousId": "a1",
        "context": {"traits": {"email": "buyer@example.com"}},
    }
    r = await client.post("/v1/identify", auth=basic_auth(site.write_key), json=identify)
    assert r.status_code == 200, r.text
    [stored] = await stored_events(session, site.site.id)
    assert stored.traits == {"email": "buyer@example.com"}
