"""The funnel from its rollup (app.leads.rollup) is the funnel counted from the leads, on the
same data: for periods starting and ending mid-day, on midnights, in other time zones, and
right after leads change on days already rolled up (status, first contact, merges, a lead's
first day moving, a new lead on a past day, spam), before and after the next rollup pass."""

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.domain import lead_writes
from app.domain.tables import Lead
from app.leads import rollup, stats
from app.leads.models import FunnelCount, FunnelDelta, FunnelRollup
from app.leads.schemas import LOST_REASONS
from tests.factories import at, bearer, send
from tests.leads.helpers import cold

NOW = datetime(2026, 10, 20, 15, 30, tzinfo=UTC)
DAYS = 40
STATUSES = ("new", "new", "contacted", "qualified", "won", "lost")


def _leads(site_id: uuid.UUID, rng: random.Random, count: int) -> list[dict[str, Any]]:
    rows = []
    for n in range(count):
        # Some exactly on a UTC midnight, the edge of two days.
        first_seen = NOW - timedelta(days=rng.randint(0, DAYS), hours=rng.uniform(0, 24))
        if n % 17 == 0:
            first_seen = rollup.floor_day(first_seen)
        status = rng.choice(STATUSES)
        rows.append(
            {
                "id": uuid.uuid4(),
                "site_id": site_id,
                "created_at": first_seen,
                "updated_at": first_seen,
                "first_seen_at": first_seen,
                "last_seen_at": first_seen,
                "temperature": rng.choice(("cold", "warm", "hot")),
                "status": status,
                "lost_reason": rng.choice(LOST_REASONS) if status == "lost" else None,
                "identified": rng.random() < 0.3,
                "first_contacted_at": first_seen + timedelta(hours=1)
                if rng.random() < 0.2
                else None,
            }
        )
    return rows


@pytest.fixture
async def leads(session: AsyncSession, site, other_site) -> list[dict[str, Any]]:
    """The site's leads over the last 40 days (a few merged), and another site's."""
    rng = random.Random(11)
    rows = _leads(site.site.id, rng, 400)
    for row in rows[1:8]:
        row["merged_into_id"] = rows[0]["id"]
    await session.execute(insert(Lead), rows + _leads(other_site.site.id, rng, 100))
    return rows


@pytest.fixture
def sessionmaker(db_engine: AsyncEngine):
    return make_sessionmaker(db_engine)


async def both(sessionmaker, site_id, start, end) -> tuple[dict[str, Any], dict[str, Any]]:
    """The funnel as the route answers it, and counted from the leads alone."""
    async with sessionmaker() as session:
        answered = await stats.funnel(session, site_id, start, end)
        live = [
            tuple(r) for r in await session.execute(stats.live_funnel_rows(site_id, start, end))
        ]
    return answered, stats.summarize_funnel(live, start, end)


def periods() -> list[tuple[datetime, datetime]]:
    midnight = rollup.floor_day(NOW)
    plus5 = timezone(timedelta(hours=5))
    return [
        (NOW - timedelta(days=30), NOW),  # the default period: mid-day to mid-day, up to now
        (midnight - timedelta(days=20), midnight - timedelta(days=5)),  # whole days
        (midnight - timedelta(days=20, hours=3), midnight - timedelta(days=5, minutes=-7)),
        (midnight - timedelta(days=3, hours=20), midnight - timedelta(days=3, hours=2)),
        (NOW - timedelta(days=60), NOW + timedelta(days=2)),  # beyond both ends
        (datetime(2026, 10, 1, 0, 0, tzinfo=plus5), datetime(2026, 10, 15, 23, 0, tzinfo=plus5)),
        (NOW - timedelta(days=100), NOW - timedelta(days=90)),  # before any lead
    ]


async def assert_rollup_equals_live(sessionmaker, site_id) -> None:
    for start, end in periods():
        answered, live = await both(sessionmaker, site_id, start, end)
        assert answered == live, (start, end)


async def test_the_rolled_up_funnel_equals_the_leads_funnel(db_engine, sessionmaker, site, leads):
    assert await rollup.roll_up(db_engine, NOW) > 0
    async with sessionmaker() as session:
        rolled_until = await session.scalar(
            select(FunnelRollup.rolled_until).where(FunnelRollup.site_id == site.site.id)
        )
        assert rolled_until == rollup.floor_day(NOW)
        counted = await session.scalar(
            select(func.sum(FunnelCount.leads)).where(FunnelCount.site_id == site.site.id)
        )
        # Every live lead before today is in the rollup, once.
        assert counted == sum(
            1
            for r in leads
            if r.get("merged_into_id") is None and r["first_seen_at"] < rollup.floor_day(NOW)
        )
    await assert_rollup_equals_live(sessionmaker, site.site.id)
    # The default period's funnel is not empty: the comparison compares something.
    answered, _ = await both(sessionmaker, site.site.id, NOW - timedelta(days=30), NOW)
    assert answered["leads"] > 200
    assert answered["spam"] > 0
    # A pass with nothing new to do takes no steps.
    assert await rollup.roll_up(db_engine, NOW) == 0


async def test_the_funnel_reads_the_counts_and_the_deltas_of_rolled_up_days(
    db_engine, sessionmaker, session, site, leads
):
    """The rollup's counts are what the funnel reads for whole days (a count changed behind
    its back shows), plus the deltas written since; the next pass folds the deltas in."""
    await rollup.roll_up(db_engine, NOW)
    day = rollup.floor_day(NOW) - timedelta(days=10)
    period = (day - timedelta(days=2), day + timedelta(days=2))
    before, _ = await both(sessionmaker, site.site.id, *period)
    group = {
        "site_id": site.site.id,
        "day": day,
        "temperature": "hot",
        "status": "won",
        "lost_reason": None,
        "identified": True,
        "contacted": True,
    }
    await session.execute(insert(FunnelCount).values(**group, leads=1000))
    tampered, live = await both(sessionmaker, site.site.id, *period)
    assert tampered["leads"] == before["leads"] + 1000
    assert live == before
    await session.execute(insert(FunnelDelta).values(**group, leads=-1000))
    assert (await both(sessionmaker, site.site.id, *period))[0] == before
    # The next pass folds the delta into the day's counts.
    await rollup.roll_up(db_engine, NOW)
    assert (await both(sessionmaker, site.site.id, *period))[0] == before
    assert await session.scalar(select(func.count()).select_from(FunnelDelta)) == 0
    # The tampered group cancelled out: no row of zero leads is kept.
    assert await session.scalar(select(func.min(FunnelCount.leads))) > 0


async def test_changes_to_rolled_up_days_show_at_once_and_after_the_next_pass(
    db_engine, sessionmaker, session, site, leads
):
    await rollup.roll_up(db_engine, NOW)
    live = [r for r in leads if r.get("merged_into_id") is None]
    old = [r for r in live if r["first_seen_at"] < rollup.floor_day(NOW) - timedelta(days=2)]
    ids = [r["id"] for r in old]
    async with sessionmaker() as s, s.begin():
        # The sales team's changes, through the one writer of leads.
        for lead_id, patch in [
            (ids[0], {"status": "won", "status_changed_at": NOW}),
            (ids[1], {"status": "lost", "lost_reason": "spam", "status_changed_at": NOW}),
            (ids[2], {"first_contacted_at": NOW}),
        ]:
            lead = await s.get(Lead, lead_id)
            assert lead is not None
            await lead_writes.patch_lead(s, lead, patch, NOW)  # type: ignore[arg-type]
        conn = await s.connection()
        # A merge: the loser leaves its day.
        await lead_writes.mark_merged(conn, ids[3], ids[4])
        # A late event: a lead's first day moves 9 days earlier; re-scoring warms another.
        moved = await s.get(Lead, ids[5])
        assert moved is not None
        profile = stats_profile(moved)
        profile["first_seen_at"] = moved.first_seen_at - timedelta(days=9)  # type: ignore[operator]
        await lead_writes.update_profiles(conn, [profile])  # type: ignore[list-item]
        await s.execute(update(Lead).where(Lead.id == ids[6]).values(temperature="hot"))
        # A new lead first seen on a past day.
        new_lead: Any = _leads(site.site.id, random.Random(3), 1)[0]
        new_lead["first_seen_at"] = old[7]["first_seen_at"]
        await lead_writes.insert_new(conn, [new_lead])
    changed_days = await session.scalar(
        select(func.count(func.distinct(FunnelDelta.day))).where(
            FunnelDelta.site_id == site.site.id
        )
    )
    assert changed_days is not None
    assert changed_days >= 5
    await assert_rollup_equals_live(sessionmaker, site.site.id)
    await rollup.roll_up(db_engine, NOW)
    assert await session.scalar(select(func.count()).select_from(FunnelDelta)) == 0
    await assert_rollup_equals_live(sessionmaker, site.site.id)


def stats_profile(lead: Lead) -> dict[str, Any]:
    return {c.key: getattr(lead, c.key) for c in Lead.__table__.columns}


async def test_a_rollup_moves_on_with_the_days(db_engine, sessionmaker, site, leads):
    await rollup.roll_up(db_engine, NOW - timedelta(days=3))
    await assert_rollup_equals_live(sessionmaker, site.site.id)
    assert await rollup.roll_up(db_engine, NOW) == 3 + 1  # three days, then up to date
    await assert_rollup_equals_live(sessionmaker, site.site.id)


async def test_the_route_answers_the_rollup_with_leads_ingested_since(
    db_engine, client, session, sessionmaker, site
):
    """Through the API: leads ingested on past days after the rollup counted them, periods
    given in another time zone."""
    await send(client, site, *cold("early"), *cold("later", 60 * 24 * 3))
    now = datetime.fromisoformat(at(60 * 24 * 10))
    await rollup.roll_up(db_engine, now)
    # Events stamped on rolled-up days: a new lead, and an older first visit of "later".
    await send(client, site, *cold("late", 60 * 24 * 2), *cold("later", 60 * 24 * 1))
    plus3 = timezone(timedelta(hours=3))
    params = {
        "from": datetime.fromisoformat(at(-60)).astimezone(plus3).isoformat(),
        "to": datetime.fromisoformat(at(60 * 24 * 8)).astimezone(plus3).isoformat(),
    }
    r = await client.get("/v1/stats/funnel", headers=bearer(site.secret_key), params=params)
    assert r.status_code == 200, r.text
    assert r.json()["leads"] == 3
    start, end = datetime.fromisoformat(params["from"]), datetime.fromisoformat(params["to"])
    answered, live = await both(sessionmaker, site.site.id, start, end)
    assert answered == live
    assert answered["leads"] == 3


async def test_passes_of_two_replicas_at_once_neither_fail_nor_count_twice(
    database_url, sessionmaker, site, leads
):
    # Two engines, as two replicas' loops: on PostgreSQL the later writer of a step meets a
    # serialization failure, which must leave the step to the next pass, not crash the loop.
    replicas = [make_engine(Settings(database_url=database_url)) for _ in range(2)]
    try:
        for _ in range(3):
            await asyncio.gather(*(rollup.roll_up(engine, NOW) for engine in replicas))
        await rollup.roll_up(replicas[0], NOW)  # whatever a conflict left
        assert await rollup.roll_up(replicas[1], NOW) == 0
    finally:
        for engine in replicas:
            await engine.dispose()
    await assert_rollup_equals_live(sessionmaker, site.site.id)
