"""Hostile or broken input never fails a batch: absurd clocks are corrected and flagged, an
over-deep event is rejected by index, and the batch's good events are stored."""

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from app.ingestion.parsing import MAX_JSON_DEPTH
from tests.factories import basic_auth, lead_by_anonymous_id, stored_events, track


def nested(depth: int) -> str:
    """JSON text of a properties object `depth` levels deep (the object itself is one); text,
    because the standard library's encoder cannot write the deepest of them."""
    return '{"a":' * (depth - 1) + '{"leaf":1}' + "}" * (depth - 1)


def deep_track(message_id: str, depth: int) -> str:
    return (
        f'{{"type":"track","event":"X","anonymousId":"a","messageId":"{message_id}",'
        f'"properties":{nested(depth)}}}'
    )


def corrected(event) -> dict:
    return event.context["leadheat"]["timestamp_corrected"]


async def test_a_timestamp_out_of_range_after_skew_correction_is_replaced_and_flagged(
    client, session, site
):
    r = await client.post(
        "/v1/batch",
        auth=basic_auth(site.write_key),
        json={
            "batch": [
                track("a", "X", "bad-clock", timestamp="9999-12-31T00:00:00Z"),
                track("a", "X", "good", timestamp="1999-12-31T23:59:30Z"),
            ],
            "sentAt": "2000-01-01T00:00:00Z",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2
    events = {e.message_id: e for e in await stored_events(session, site.site.id)}
    bad = events["bad-clock"]
    assert bad.timestamp == bad.received_at
    assert bad.original_timestamp == datetime(9999, 12, 31, tzinfo=UTC)
    assert corrected(bad) == {"reason": "out_of_range", "timestamp": "9999-12-31T00:00:00Z"}
    good = events["good"]
    assert "leadheat" not in good.context
    assert good.timestamp == good.received_at - timedelta(seconds=30)


async def test_a_timestamp_that_leaves_the_calendar_in_utc_is_replaced(client, session, site):
    r = await client.post(
        "/v1/track",
        auth=basic_auth(site.write_key),
        json=track("a", "X", "m", timestamp="0001-01-01T00:00:00+05:00"),
    )
    assert r.status_code == 200, r.text
    [event] = await stored_events(session, site.site.id)
    assert event.timestamp == event.received_at
    assert event.original_timestamp is None  # not representable in UTC
    assert corrected(event)["timestamp"] == "0001-01-01T00:00:00+05:00"


async def test_a_sent_at_out_of_range_does_not_fail_the_batch(client, session, site):
    r = await client.post(
        "/v1/batch",
        auth=basic_auth(site.write_key),
        json={
            "batch": [track("a", "X", "m", sentAt="0001-01-01T00:00:00+05:00")],
            "sentAt": "0001-01-01T01:00:00+09:00",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1


@pytest.mark.parametrize(
    ("timestamp", "reason"),
    [("0001-01-01T00:00:00Z", "before_1970"), ("2999-01-01T00:00:00Z", "in_the_future")],
)
async def test_absurd_clocks_without_sent_at_are_replaced(client, session, site, timestamp, reason):
    r = await client.post(
        "/v1/track", auth=basic_auth(site.write_key), json=track("a", "X", timestamp=timestamp)
    )
    assert r.status_code == 200, r.text
    [event] = await stored_events(session, site.site.id)
    assert event.timestamp == event.received_at
    assert corrected(event) == {"reason": reason, "timestamp": timestamp}


async def test_a_timestamp_a_little_ahead_is_kept(client, session, site):
    ahead = datetime.now(UTC) + timedelta(hours=2)
    await client.post(
        "/v1/track",
        auth=basic_auth(site.write_key),
        json=track("a", "X", timestamp=ahead.isoformat()),
    )
    [event] = await stored_events(session, site.site.id)
    assert event.timestamp == ahead
    assert "leadheat" not in event.context


async def test_a_client_cannot_set_the_correction_flag(client, session, site):
    await client.post(
        "/v1/track",
        auth=basic_auth(site.write_key),
        json=track("a", "X", context={"leadheat": {"timestamp_corrected": True}, "ip": "1.2.3.4"}),
    )
    [event] = await stored_events(session, site.site.id)
    assert event.context == {"ip": "1.2.3.4"}


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 255, 600, 1_020])
async def test_over_deep_events_are_rejected_by_index(client, session, site, depth):
    # The event is one level, its properties the next: `depth - 1` levels of properties make
    # an event exactly `depth` deep.
    deep = deep_track("deep", depth - 1).encode()
    parts = [orjson.dumps(track("a", "X", "ok1")), deep, orjson.dumps(track("a", "X", "ok2"))]
    r = await client.post(
        "/v1/batch",
        auth=basic_auth(site.write_key),
        content=b'{"batch":[' + b",".join(parts) + b"]}",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    stored = [e.message_id for e in await stored_events(session, site.site.id)]
    if depth <= MAX_JSON_DEPTH:
        assert body["accepted"] == 3
        assert stored == ["ok1", "deep", "ok2"]
    else:
        assert body["accepted"] == 2
        assert body["errors"] == [
            {
                "index": 1,
                "code": "too_deep",
                "message": f"the event is nested more than {MAX_JSON_DEPTH} levels deep",
            }
        ]
        assert stored == ["ok1", "ok2"]


async def test_a_single_over_deep_call_is_a_400_with_its_code(client, site):
    r = await client.post(
        "/v1/track",
        auth=basic_auth(site.write_key),
        content=deep_track("m", 300),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["code"] == "too_deep"


@pytest.mark.parametrize(
    "context", [["a", "list"], "a string", 42], ids=["list", "string", "number"]
)
async def test_a_non_object_context_next_to_a_shared_context_is_rejected(
    client, session, site, context
):
    r = await client.post(
        "/v1/batch",
        auth=basic_auth(site.write_key),
        json={
            "batch": [track("a", "X", "bad", context=context), track("a", "X", "ok")],
            "context": {"library": {"name": "x"}},
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1
    assert r.json()["errors"][0]["index"] == 0
    assert [e.message_id for e in await stored_events(session, site.site.id)] == ["ok"]


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_non_finite_numbers_in_strings_are_not_numbers(client, session, site, amount):
    r = await client.post(
        "/v1/batch",
        auth=basic_auth(site.write_key),
        json={
            "batch": [
                track("a", "Product Added", "p", properties={"sku": "s", "price": amount}),
                track("a", "Order Completed", "o", properties={"revenue": amount}),
            ]
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2
    lead = await lead_by_anonymous_id(session, site.site.id, "a")
    assert lead.orders == 1
    assert lead.revenue == 0.0


async def test_a_lone_surrogate_is_replaced_not_a_reason_to_refuse_the_batch(client, session, site):
    # A page title cut in the middle of an emoji: JSON.stringify writes the lone half as it is.
    body = (
        b'{"batch":[{"type":"page","anonymousId":"a","messageId":"cut",'
        b'"properties":{"title":"Fridges \\ud83d"}},'
        b'{"type":"page","anonymousId":"a","messageId":"whole",'
        b'"properties":{"title":"Fridges \\ud83d\\ude00"}}]}'
    )
    r = await client.post(
        "/v1/batch",
        auth=basic_auth(site.write_key),
        content=body,
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2
    events = {e.message_id: e for e in await stored_events(session, site.site.id)}
    assert events["cut"].properties["title"] == "Fridges \ufffd"
    assert events["whole"].properties["title"] == "Fridges \U0001f600"


async def test_nan_is_still_not_json(client, site):
    r = await client.post(
        "/v1/batch",
        auth=basic_auth(site.write_key),
        content=b'{"batch":[{"type":"page","anonymousId":"a","properties":{"x":NaN,"t":"\\ud83d"}}]}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_json"
