"""Event validation never raises: whatever arrives, each event is either an event that can be
stored or a rejection that names its index."""

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.events import IngestEvent
from app.ingestion.parsing import (
    EARLIEST_TIMESTAMP,
    MAX_TIMESTAMP_AHEAD,
    Rejection,
    validate_batch,
    validate_event,
)
from tests.property.strategies import events, objects, timestamps

RECEIVED_AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
MAX_EVENT_BYTES = 32 * 1024
CODES = {"invalid_event", "event_too_large", "too_deep"}


def assert_storable(event: IngestEvent) -> None:
    """What the database will be given: JSON orjson can write, no NUL, a sane timestamp."""
    for value in (event.properties, event.traits, event.context):
        assert isinstance(value, dict)
        assert b"\\u0000" not in orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    for text in (event.message_id, event.anonymous_id, event.user_id, event.name):
        assert text is None or (isinstance(text, str) and "\x00" not in text and len(text) <= 255)
    assert event.timestamp.tzinfo is not None
    corrected = event.context.get("leadheat", {}).get("timestamp_corrected")
    if corrected:
        assert event.timestamp == event.received_at
    else:
        assert EARLIEST_TIMESTAMP <= event.timestamp <= RECEIVED_AT + MAX_TIMESTAMP_AHEAD


def check(result: Any, index: int) -> None:
    if isinstance(result, Rejection):
        assert result.index == index
        assert result.code in CODES
        assert result.message
    else:
        assert isinstance(result, IngestEvent)
        assert_storable(result)


@settings(max_examples=100, deadline=None)
@given(raw=events(), forced=st.sampled_from([None, "track", "identify"]))
def test_validate_event_never_raises(raw: Any, forced: str | None) -> None:
    result = validate_event(
        raw,
        index=7,
        forced_type=forced,
        batch_sent_at=None,
        received_at=RECEIVED_AT,
        max_event_bytes=MAX_EVENT_BYTES,
    )
    check(result, 7)


@settings(max_examples=60, deadline=None)
@given(
    batch=st.lists(events(), max_size=6),
    sent_at=timestamps(),
    shared_context=objects(),
)
def test_validate_batch_answers_every_event_by_index(
    batch: list[Any], sent_at: Any, shared_context: Any
) -> None:
    results = validate_batch(
        batch,
        sent_at=sent_at,
        shared_context=shared_context,
        received_at=RECEIVED_AT,
        max_event_bytes=MAX_EVENT_BYTES,
    )
    assert len(results) == len(batch)
    for index, result in enumerate(results):
        check(result, index)


def test_a_received_at_near_the_end_of_the_calendar_does_not_overflow() -> None:
    # receivedAt + a day must not overflow either (a server clock cannot be there, but the
    # arithmetic must not raise if it were).
    late = datetime(9999, 12, 31, 12, tzinfo=UTC)
    result = validate_event(
        {"type": "track", "event": "X", "userId": "u", "timestamp": "9999-12-31T00:00:00Z"},
        index=0,
        forced_type=None,
        batch_sent_at=late - timedelta(hours=1),
        received_at=late,
        max_event_bytes=MAX_EVENT_BYTES,
    )
    assert isinstance(result, IngestEvent)
