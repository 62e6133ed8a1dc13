"""Speed to lead's waits (hot -> first contact) kept as a histogram of bounded buckets, for
its rollup (app.leads.rollup, migration 0022) and its reads (app.leads.stats).

A wait is counted in the bucket of its upper bound in whole seconds, `ceil(wait / width) *
width`, the width growing with the wait (TIERS): 1 s up to 10 minutes, 10 s up to an hour,
then widths of at most about 2% of the wait. So a day holds at most ~2,300 buckets per owner
whatever the traffic (plus one per week of wait beyond a year), `wait <= m * 60` is exact for
every mark on a bucket bound (every whole minute up to 4 hours, every 5 minutes up to a day),
and a percentile read from the buckets is exact for whole-second waits under 10 minutes and
within a bucket's width beyond.

Integer arithmetic on the wait in microseconds (not logarithms): the triggers (PostgreSQL
and SQLite), the rollup's counts and the reads of live leads must put a wait in the same
bucket, and SQLite's math functions are optional and floating."""

from collections.abc import Iterable

MICRO = 1_000_000
# (the tier's last wait in seconds, the width of its buckets in seconds); None: no end.
TIERS: tuple[tuple[int | None, int], ...] = (
    (600, 1),
    (3600, 10),
    (4 * 3600, 60),
    (86400, 300),
    (7 * 86400, 1800),
    (60 * 86400, 3 * 3600),
    (365 * 86400, 86400),
    (None, 7 * 86400),
)


def bucket(micros: int) -> int:
    """The bucket (its upper bound, whole seconds) of a wait in microseconds; 0 for a wait
    of 0 or less (a contact recorded before the lead turned hot)."""
    if micros <= 0:
        return 0
    for last, width in TIERS:
        if last is None or micros <= last * MICRO:
            return -(-micros // (width * MICRO)) * width
    raise AssertionError("the last tier has no end")


def bucket_sql(dialect: str, became_hot_at: str, first_contacted_at: str) -> str:
    """`bucket` of first_contacted_at - became_hot_at as a SQL expression on two column
    references (NULL when not contacted)."""
    if dialect == "postgresql":
        # EXTRACT(EPOCH ...) is numeric: exact to the microsecond.
        wait = f"EXTRACT(EPOCH FROM ({first_contacted_at} - {became_hot_at}))"
        branches = [
            f"WHEN {wait} <= {last} THEN CAST(ceil({wait} / {width}) * {width} AS integer)"
            for last, width in TIERS[:-1]
            if last is not None
        ]
        final = f"CAST(ceil({wait} / {TIERS[-1][1]}) * {TIERS[-1][1]} AS integer)"
    else:
        # Naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff' (app.db.UTCDateTime): whole seconds by
        # strftime, microseconds from the text.
        def micros(column: str) -> str:
            return (
                f"(CAST(strftime('%s', {column}) AS INTEGER) * {MICRO}"
                f" + CAST(substr({column}, 21, 6) AS INTEGER))"
            )

        wait = f"({micros(first_contacted_at)} - {micros(became_hot_at)})"

        def ceil(width: int) -> str:
            return f"(({wait} + {width * MICRO - 1}) / {width * MICRO}) * {width}"

        branches = [
            f"WHEN {wait} <= {last * MICRO} THEN {ceil(width)}"
            for last, width in TIERS[:-1]
            if last is not None
        ]
        final = ceil(TIERS[-1][1])
    return f"(CASE WHEN {wait} <= 0 THEN 0 {' '.join(branches)} ELSE {final} END)"


def percentile(histogram: list[tuple[int, int]], q: float) -> float | None:
    """`app.leads.stats.percentile` of the values of a histogram ((value, count) sorted by
    value): linear interpolation between closest ranks."""
    total = sum(count for _, count in histogram)
    if not total:
        return None
    position = (total - 1) * q
    low = int(position)
    high = min(low + 1, total - 1)
    value_low = value_high = None
    seen = 0
    for value, count in histogram:
        seen += count
        if value_low is None and low < seen:
            value_low = value
        if high < seen:
            value_high = value
            break
    if value_low is None or value_high is None:  # counts below zero: a broken rollup
        raise ValueError("a histogram's counts must be positive")
    return round(value_low + (value_high - value_low) * (position - low), 1)


def within(histogram: Iterable[tuple[int, int]], seconds: float) -> int:
    """How many of a histogram's values are at most `seconds`."""
    return sum(count for value, count in histogram if value <= seconds)
