"""Stored event rows as scoring events (`scorer.stored_scoring_events`, inlined for preview and
re-scoring): its edge cases, and equality with its reference on random rows."""

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app.scoring.scorer import _stored_scoring_events_reference, stored_scoring_events
from tests.factories import T0

GAP = timedelta(minutes=30)


def row(n: int, seconds: float, kind: str = "page", **extra: Any) -> tuple[Any, ...]:
    event_type, name = (kind, None) if kind in ("page", "screen", "identify") else ("track", kind)
    return (
        f"m{n}",
        extra.get("type", event_type),
        extra.get("name", name),
        extra.get("properties", {}),
        extra.get("context", {}),
        T0 + timedelta(seconds=seconds),
    )


def both(rows: list[tuple[Any, ...]]) -> list[Any]:
    fast = stored_scoring_events(rows, GAP)
    assert fast == _stored_scoring_events_reference(rows, GAP)
    return fast


def test_a_gap_of_exactly_the_visit_timeout_stays_in_the_visit():
    gap = GAP.total_seconds()
    events = both([row(0, 0), row(1, gap), row(2, 2 * gap + 0.000001)])
    assert [e.visit for e in events] == [1, 1, 2]


def test_identical_timestamps_share_a_visit_and_keep_their_order():
    events = both([row(0, 100), row(1, 100, "Product Viewed"), row(2, 100)])
    assert [(e.message_id, e.visit) for e in events] == [("m0", 1), ("m1", 1), ("m2", 1)]


def test_an_older_row_opens_no_visit_and_the_gap_runs_from_it():
    # Rows out of time order (not how they are read, but the function must not care): an
    # older one opens no visit, and the next gap is measured from it, as ingestion does.
    events = both([row(0, 7200), row(1, 0), row(2, 7200 - 60)])
    assert [e.visit for e in events] == [1, 1, 2]


def test_kinds_urls_and_missing_properties():
    events = both(
        [
            row(0, 0, "screen", context={"page": {"url": "https://a.example/x"}}),
            row(1, 1, "Order Completed", properties=None, context=None),
            row(2, 2, "track", name=None, properties={"url": "https://a.example/p"}),
            row(3, 3, "page", context={"page": {"url": ""}}, properties={"url": 42}),
            row(4, 4, "page", context={"page": "not an object"}, properties={"url": "u"}),
            row(5, 5, "identify", context=[], properties=[]),
        ]
    )
    assert [(e.kind, e.url, e.properties) for e in events] == [
        ("page", "https://a.example/x", {}),
        ("Order Completed", None, {}),
        ("", "https://a.example/p", {"url": "https://a.example/p"}),
        ("page", None, {"url": 42}),
        ("page", "u", {"url": "u"}),
        ("identify", None, {}),
    ]


urls = st.one_of(st.none(), st.just(""), st.just("https://a.example/"), st.integers(0, 2))
objects: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.just({}),
    st.just([]),
    st.fixed_dictionaries({}, optional={"url": urls, "price": st.integers(0, 999)}),
)
contexts = st.one_of(
    objects,
    st.fixed_dictionaries(
        {
            "page": st.one_of(
                st.none(), st.just("x"), st.fixed_dictionaries({}, optional={"url": urls})
            )
        }
    ),
)
rows = st.lists(
    st.tuples(
        st.sampled_from(["track", "page", "screen", "identify"]),
        st.one_of(st.none(), st.just(""), st.sampled_from(["Product Viewed", "*"])),
        objects,
        contexts,
        st.integers(0, 3 * 3600),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(data=rows, ordered=st.booleans())
def test_equals_its_reference(data, ordered):
    if ordered:
        data = sorted(data, key=lambda d: d[4])
    stored = [
        (f"m{n}", t, name, props, context, T0 + timedelta(seconds=s))
        for n, (t, name, props, context, s) in enumerate(data)
    ]
    both(stored)
