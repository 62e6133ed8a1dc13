"""receivedAt, and Segment's clock-skew correction: timestamp + (receivedAt - sentAt)."""

from datetime import UTC, datetime, timedelta

from tests.factories import basic_auth, stored_events, track


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


async def test_skew_is_corrected_with_the_batch_sent_at(client, session, site):
    # The client's clock is two hours behind: it says it sent the batch two hours ago.
    now = datetime.now(UTC)
    client_now = now - timedelta(hours=2)
    event_time = client_now - timedelta(seconds=30)
    r = await client.post(
        "/v1/batch",
        auth=basic_auth(site.write_key),
        json={
            "batch": [track("a", "X", "s1", timestamp=iso(event_time))],
            "sentAt": iso(client_now),
        },
    )
    assert r.json()["accepted"] == 1
    [event] = await stored_events(session, site.site.id)
    assert event.original_timestamp == event_time
    assert event.sent_at == client_now
    # Corrected: 30 s before it was received, whatever the client's clock said.
    assert abs((event.received_at - event.timestamp) - timedelta(seconds=30)) < timedelta(seconds=1)
    assert event.timestamp == event_time + (event.received_at - client_now)


async def test_an_event_level_sent_at_wins_over_the_batch(client, session, site):
    t = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    await client.post(
        "/v1/batch",
        auth=basic_auth(site.write_key),
        json={
            "batch": [
                track("a", "X", "s2", timestamp=iso(t), sentAt=iso(t + timedelta(minutes=1)))
            ],
            "sentAt": iso(t + timedelta(days=1)),
        },
    )
    [event] = await stored_events(session, site.site.id)
    assert event.timestamp == t + (event.received_at - (t + timedelta(minutes=1)))


async def test_without_sent_at_the_timestamp_is_kept(client, session, site):
    t = datetime(2025, 6, 1, 8, 30, tzinfo=UTC)
    await client.post(
        "/v1/track", auth=basic_auth(site.write_key), json=track("a", "X", timestamp=iso(t))
    )
    [event] = await stored_events(session, site.site.id)
    assert event.timestamp == t


async def test_without_timestamp_the_receive_time_is_used(client, session, site):
    before = datetime.now(UTC)
    await client.post("/v1/track", auth=basic_auth(site.write_key), json=track("a", "X"))
    [event] = await stored_events(session, site.site.id)
    assert before <= event.received_at <= datetime.now(UTC)
    assert event.timestamp == event.received_at


async def test_a_wildly_wrong_clock_is_corrected_not_rejected(client, session, site):
    r = await client.post(
        "/v1/batch",
        auth=basic_auth(site.write_key),
        json={
            "batch": [track("a", "X", "s3", timestamp="2001-01-01T00:00:00Z")],
            "sentAt": "2001-01-01T00:00:05Z",
        },
    )
    assert r.json()["accepted"] == 1
    [event] = await stored_events(session, site.site.id)
    assert abs(event.received_at - event.timestamp - timedelta(seconds=5)) < timedelta(seconds=1)


async def test_timestamps_without_a_zone_are_utc(client, session, site):
    await client.post(
        "/v1/track",
        auth=basic_auth(site.write_key),
        json=track("a", "X", timestamp="2025-03-04T05:06:07"),
    )
    [event] = await stored_events(session, site.site.id)
    assert event.timestamp == datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


async def test_an_unparseable_timestamp_rejects_the_event(client, site):
    r = await client.post(
        "/v1/batch",
        auth=basic_auth(site.write_key),
        json={"batch": [track("a", "X", timestamp="yesterday-ish")]},
    )
    assert r.json()["rejected"] == 1
    assert "timestamp" in r.json()["errors"][0]["message"]
