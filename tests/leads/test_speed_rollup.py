"""Speed to lead from its rollup (app.leads.rollup, app.leads.waits) is speed to lead counted
from the leads (`rollup=False`, the path the rollup replaced), on the same data: for the team
and per owner, over periods starting and ending mid-day, on midnights and in other time
zones, and right after leads change on days already rolled up (a lead turning hot, a first
contact, a handover, won, lost with a reason, a merge, an erasure, a new hot lead on a past
day), before and after the next pass. Waits are whole seconds under 10 minutes here, where
the histogram is exact; the buckets themselves are checked apart, the triggers' and the
count's against the app's."""

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.config import WebhookSettings
from app.db import make_sessionmaker
from app.domain import lead_writes
from app.domain.tables import Lead
from app.leads import rollup, stats, waits
from app.leads.models import FunnelRollup, SpeedCount, SpeedDelta
from app.leads.schemas import LOST_REASONS

NOW = datetime(2026, 10, 20, 15, 30, tzinfo=UTC)
DAYS = 40
OWNERS = [uuid.uuid4() for _ in range(3)]


def _leads(site_id: uuid.UUID, rng: random.Random, count: int) -> list[dict[str, Any]]:
    rows = []
    for n in range(count):
        first_seen = NOW - timedelta(days=rng.randint(0, DAYS), hours=rng.uniform(0, 24))
        hot = first_seen + timedelta(minutes=rng.uniform(0, 60)) if n % 4 else None
        if hot is not None and n % 19 == 0:
            hot = rollup.floor_day(hot)  # on a UTC midnight, the edge of two days
        contacted = None
        if hot is not None and rng.random() < 0.7:
            # Whole seconds (the histogram is exact there), some before the lead turned hot.
            contacted = hot + timedelta(seconds=rng.randint(-30, 600))
        status = rng.choice(("new", "contacted", "qualified", "won", "lost", "lost"))
        rows.append(
            {
                "id": uuid.uuid4(),
                "site_id": site_id,
                "created_at": first_seen,
                "updated_at": first_seen,
                "first_seen_at": first_seen,
                "last_seen_at": first_seen,
                "temperature": "hot" if hot else "cold",
                "became_hot_at": hot,
                "first_contacted_at": contacted,
                "status": status,
                "lost_reason": rng.choice([*LOST_REASONS, None]) if status == "lost" else None,
                "owner_id": rng.choice([*OWNERS, None]),
            }
        )
    return rows


@pytest.fixture
async def leads(session: AsyncSession, site, other_site) -> list[dict[str, Any]]:
    """The site's leads over the last 40 days (a few merged), and another site's."""
    rng = random.Random(22)
    rows = _leads(site.site.id, rng, 500)
    for row in rows[1:8]:
        row["merged_into_id"] = rows[0]["id"]
    await session.execute(insert(Lead), rows + _leads(other_site.site.id, rng, 100))
    return rows


@pytest.fixture
def sessionmaker(db_engine: AsyncEngine):
    return make_sessionmaker(db_engine)


def periods() -> list[tuple[datetime, datetime]]:
    midnight = rollup.floor_day(NOW)
    plus5 = timezone(timedelta(hours=5))
    return [
        (NOW - timedelta(days=30), NOW),  # the default period
        (midnight - timedelta(days=20), midnight - timedelta(days=5)),  # whole days
        (midnight - timedelta(days=20, hours=3), midnight - timedelta(days=5, minutes=-7)),
        (midnight - timedelta(days=3, hours=20), midnight - timedelta(days=3, hours=2)),
        (NOW - timedelta(days=60), NOW + timedelta(days=2)),  # beyond both ends
        (datetime(2026, 10, 1, 0, 0, tzinfo=plus5), datetime(2026, 10, 15, 23, 0, tzinfo=plus5)),
        (NOW - timedelta(days=100), NOW - timedelta(days=90)),  # before any lead
    ]


async def answers(sessionmaker, site_id, start, end, by_owner) -> tuple[dict, dict]:
    """Speed to lead as the route answers it, and counted from the leads alone."""
    found = []
    for use_rollup in (True, False):
        async with sessionmaker() as session:
            found.append(
                await stats.speed_to_lead(
                    session,
                    site_id,
                    start,
                    end,
                    WebhookSettings(),
                    NOW,
                    by_owner=by_owner,
                    rollup=use_rollup,
                )
            )
    return found[0], found[1]


async def assert_rollup_equals_live(sessionmaker, site_id) -> None:
    for start, end in periods():
        for by_owner in (False, True):
            answered, live = await answers(sessionmaker, site_id, start, end, by_owner)
            assert answered == live, (start, end, by_owner)


async def deltas(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(SpeedDelta)) or 0


async def test_the_rolled_up_speed_to_lead_equals_the_leads(
    db_engine, sessionmaker, session, site, leads
):
    assert await rollup.roll_up(db_engine, NOW) > 0
    rolled_until = await session.scalar(
        select(FunnelRollup.speed_rolled_until).where(FunnelRollup.site_id == site.site.id)
    )
    assert rolled_until == rollup.floor_day(NOW)
    assert await deltas(session) == 0
    counted = await session.scalar(
        select(func.sum(SpeedCount.hot_leads)).where(SpeedCount.site_id == site.site.id)
    )
    assert counted == sum(
        1
        for r in leads
        if r.get("merged_into_id") is None
        and r["became_hot_at"] is not None
        and r["became_hot_at"] < rollup.floor_day(NOW)
    )
    await assert_rollup_equals_live(sessionmaker, site.site.id)
    # The comparison compares something: figures for the team and several owners.
    answered, _ = await answers(sessionmaker, site.site.id, NOW - timedelta(days=30), NOW, True)
    assert answered["hot_leads"] > 200
    assert answered["median_seconds"] is not None
    assert answered["lost"] > 0
    assert answered["won"] > 0
    assert len(answered["by_owner"]) == 4
    assert await rollup.roll_up(db_engine, NOW) == 0
    # What is answered for whole days is the rollup's: a count changed behind its back shows.
    await session.execute(
        insert(SpeedCount).values(
            site_id=site.site.id,
            day=rollup.floor_day(NOW) - timedelta(days=10),
            owner_id=None,
            wait_bucket=None,
            outcome="won",
            lost_reason=None,
            hot_leads=1000,
            contacted=0,
        )
    )
    tampered, live = await answers(sessionmaker, site.site.id, NOW - timedelta(days=30), NOW, True)
    assert tampered["hot_leads"] == live["hot_leads"] + 1000 == answered["hot_leads"] + 1000
    assert tampered["won"] == answered["won"] + 1000


async def test_changes_to_rolled_up_days_show_at_once_and_after_the_next_pass(
    db_engine, sessionmaker, session, site, leads
):
    await rollup.roll_up(db_engine, NOW)
    live = [r for r in leads if r.get("merged_into_id") is None]
    past = rollup.floor_day(NOW) - timedelta(days=2)
    hot = [r["id"] for r in live if r["became_hot_at"] and r["became_hot_at"] < past]
    cold = [r for r in live if r["became_hot_at"] is None and r["first_seen_at"] < past]
    waiting = [
        r["id"]
        for r in live
        if r["became_hot_at"] and r["became_hot_at"] < past and r["first_contacted_at"] is None
    ]
    async with sessionmaker() as s, s.begin():
        for lead_id, patch in [
            (waiting[0], {"first_contacted_at": NOW}),  # contacted days later: a long wait
            (waiting[1], {"status": "won", "status_changed_at": NOW}),
            (hot[2], {"status": "lost", "lost_reason": "spam", "status_changed_at": NOW}),
            (hot[3], {"owner_id": OWNERS[0] if hot[3] != OWNERS[0] else OWNERS[1]}),
            (hot[4], {"owner_id": None}),
            # A lead turning hot late: on a day rolled up long ago, contacted 90 s later.
            (
                cold[0]["id"],
                {
                    "became_hot_at": cold[0]["first_seen_at"],
                    "first_contacted_at": cold[0]["first_seen_at"] + timedelta(seconds=90),
                    "owner_id": OWNERS[2],
                },
            ),
        ]:
            lead = await s.get(Lead, lead_id)
            assert lead is not None
            await lead_writes.patch_lead(s, lead, patch, NOW)  # type: ignore[arg-type]
        conn = await s.connection()
        await lead_writes.mark_merged(conn, hot[5], hot[6])
        await lead_writes.delete_leads(conn, [hot[7], hot[8]])  # an erasure
        new_lead: Any = _leads(site.site.id, random.Random(3), 2)[1]
        new_lead["became_hot_at"] = past - timedelta(days=5, hours=1)
        new_lead["first_contacted_at"] = new_lead["became_hot_at"] + timedelta(seconds=42)
        await lead_writes.insert_new(conn, [new_lead])
    written = await deltas(session)
    assert written >= 10
    # An update that changes nothing speed to lead counts writes no delta.
    await session.execute(update(Lead).where(Lead.id == hot[9]).values(visits=Lead.visits + 1))
    assert await deltas(session) == written
    await assert_rollup_equals_live(sessionmaker, site.site.id)
    await rollup.roll_up(db_engine, NOW)
    assert await deltas(session) == 0
    await assert_rollup_equals_live(sessionmaker, site.site.id)
    # No row of zero or fewer is kept after the fold.
    assert await session.scalar(select(func.min(SpeedCount.hot_leads + SpeedCount.contacted))) > 0


async def test_the_triggers_and_the_count_bucket_waits_as_the_app_does(
    db_engine, sessionmaker, session, site
):
    """Waits across every tier, to the microsecond, either side of bucket bounds."""
    waits_seconds = [0, 0.000001, 0.5, 1, 1.000001, 599.999999, 600, 600.000001, 605, 3599.5]
    waits_seconds += [3600, 3600.000001, 3661, 14400.2, 86399, 86400.5, 604801, 5184001]
    waits_seconds += [31536000.000001, 40000000, -5]
    hot = rollup.floor_day(NOW) - timedelta(days=3, seconds=-123.456789)
    rows = [
        {
            "id": uuid.uuid4(),
            "site_id": site.site.id,
            "created_at": hot,
            "updated_at": hot,
            "first_seen_at": hot,
            "temperature": "hot",
            "became_hot_at": hot,
            "first_contacted_at": hot + timedelta(seconds=wait),
        }
        for wait in waits_seconds
    ]
    await session.execute(insert(Lead), rows)
    expected = _tally([waits.bucket(round(wait * waits.MICRO)) for wait in waits_seconds])
    assert len(expected) == 15  # (some share a bucket: 1 and 0.5, 0 and -5...)
    assert await _buckets(session, SpeedDelta, site.site.id) == expected
    await rollup.roll_up(db_engine, NOW)
    assert await _buckets(session, SpeedCount, site.site.id) == expected
    answered, live = await answers(
        sessionmaker, site.site.id, NOW - timedelta(days=10), NOW, by_owner=False
    )
    # Beyond 10 minutes a wait is its bucket's bound: the shares are exact on the marks.
    assert answered["within_minutes"] == live["within_minutes"]
    assert answered["hot_leads"] == live["hot_leads"] == len(waits_seconds)


async def _buckets(session: AsyncSession, table: Any, site_id: uuid.UUID) -> dict[int, int]:
    """The contacted leads by wait bucket: the deltas' rows, or the counts' histograms."""
    pairs: list[Any]
    if table is SpeedDelta:
        pairs = list(
            await session.execute(
                select(table.wait_bucket, table.contacted).where(
                    table.site_id == site_id, table.wait_bucket.is_not(None)
                )
            )
        )
    else:
        histograms = await session.scalars(
            select(table.waits).where(table.site_id == site_id, table.waits.is_not(None))
        )
        pairs = [pair for histogram in histograms for pair in histogram]
    found: dict[int, int] = {}
    for bucket, n in pairs:
        found[bucket] = found.get(bucket, 0) + n
    return found


def _tally(buckets: list[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for b in buckets:
        counts[b] = counts.get(b, 0) + 1
    return counts


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=600), max_size=60), st.sampled_from([0.5, 0.9]))
def test_the_histogram_percentile_is_the_percentile_of_whole_second_waits(values, q):
    histogram = sorted(_tally([waits.bucket(v * waits.MICRO) for v in values]).items())
    assert waits.percentile(histogram, q) == stats.percentile(sorted(map(float, values)), q)
    for mark in (5, 10):
        assert waits.within(histogram, mark * 60) == sum(1 for v in values if v <= mark * 60)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=-(10**9), max_value=10**15), st.integers(0, 10**12))
def test_buckets_are_monotone_ceilings_of_bounded_width(micros, more):
    b = waits.bucket(micros)
    assert b == waits.bucket(b * waits.MICRO)  # a bucket's bound is in the bucket
    assert waits.bucket(micros + more) >= b
    if micros <= 0:
        assert b == 0
        return
    assert b * waits.MICRO >= micros  # ceil: `wait <= mark` is `bucket <= mark` on bounds
    width = next(w for last, w in waits.TIERS if last is None or micros <= last * waits.MICRO)
    assert b * waits.MICRO - micros < width * waits.MICRO
    # Bounded: whole seconds under 10 minutes, then at most ~2% wide.
    assert width == 1 if micros <= 600 * waits.MICRO else width <= 0.021 * b


def test_a_day_holds_a_bounded_number_of_buckets():
    """Every tier's bounds are buckets, and a wait just above the previous bound falls in the
    next: about 2,300 buckets up to a year's wait."""
    values, previous = [0], 0
    for last, width in waits.TIERS[:-1]:
        assert last is not None
        assert last % width == previous % width == 0
        for value in range(previous + width, last + 1, width):
            assert waits.bucket(value * waits.MICRO) == value
            assert waits.bucket((value - width) * waits.MICRO + 1) == value
            values.append(value)
        previous = last
    assert len(values) == len(set(values)) < 2400
