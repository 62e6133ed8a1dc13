"""Hypothesis strategies for what clients send: Segment events, and everything a broken or
hostile client could put in their place."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

# Strings that broke ingestion once, or could: NUL, lone surrogates, absurd dates, big text.
NASTY_STRINGS = [
    "",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfff",
    "9999-12-31T00:00:00Z",
    "0001-01-01T00:00:00+05:00",
    "0001-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "2999-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "NaN",
    "Infinity",
    "1e999",
    "x" * 300,
    "Product Added",
    "Order Completed",
]


def texts(surrogates: bool = True) -> st.SearchStrategy[str]:
    nasty = [
        s for s in NASTY_STRINGS if surrogates or not any(0xD800 <= ord(c) < 0xE000 for c in s)
    ]
    return st.one_of(st.sampled_from(nasty), st.text(max_size=20))


def numbers(finite: bool = False) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(),
        st.integers(min_value=2**63 - 2, max_value=2**70),  # around and beyond 64 bits
        st.floats(allow_nan=not finite, allow_infinity=not finite),
    )


def json_values(surrogates: bool = True, finite: bool = False) -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), numbers(finite), texts(surrogates))
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(texts(surrogates), inner, max_size=4)
        ),
        max_leaves=12,
    )


def deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def objects(surrogates: bool = True, finite: bool = False) -> st.SearchStrategy[Any]:
    """properties / traits / context: usually objects, sometimes deep, sometimes not objects."""
    return st.one_of(
        st.dictionaries(texts(surrogates), json_values(surrogates, finite), max_size=5),
        st.integers(min_value=1, max_value=300).map(deep),
        json_values(surrogates, finite),
    )


def timestamps() -> st.SearchStrategy[Any]:
    zones = st.sampled_from([UTC, timezone(timedelta(hours=5)), timezone(timedelta(hours=-11))])
    return st.one_of(
        st.none(),
        st.datetimes(
            min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones
        ).map(datetime.isoformat),
        st.sampled_from(NASTY_STRINGS),
        st.integers(),
    )


def events(
    message_ids: st.SearchStrategy[Any] | None = None, surrogates: bool = True, finite: bool = False
) -> st.SearchStrategy[Any]:
    """A Segment event with any of its fields present, absent or wrong; or not an object."""
    ids = st.one_of(st.none(), st.sampled_from(["a", "b", "u1"]), json_values(surrogates, finite))
    fields = {
        "type": st.one_of(
            st.sampled_from(["track", "page", "screen", "identify", "alias", "group"]),
            json_values(surrogates, finite),
        ),
        "event": st.one_of(st.sampled_from(["Product Added", "Order Completed"]), ids),
        "anonymousId": ids,
        "userId": ids,
        "previousId": ids,
        "groupId": ids,
        "messageId": message_ids if message_ids is not None else ids,
        "name": ids,
        "timestamp": timestamps(),
        "originalTimestamp": timestamps(),
        "sentAt": timestamps(),
        "properties": objects(surrogates, finite),
        "traits": objects(surrogates, finite),
        "context": objects(surrogates, finite),
    }
    rest = {k: v for k, v in fields.items() if k != "type"}
    event = st.fixed_dictionaries({"type": fields["type"]}, optional=rest)
    untyped = st.fixed_dictionaries({}, optional=fields)
    return st.one_of(event, event, untyped, json_values(surrogates, finite))
