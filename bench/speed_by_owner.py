"""Speed to lead for the team and per owner on a site of 200k leads, timed in-process (the
queries and the Python around them, no HTTP), and the plans of the per-owner queries.

A database of its own (dropped first), migrated to head, 200k leads of one site written by
SQL: first seen over 90 days, 13k of them turned hot in the last 30 days (the default period),
owned by 10 people (some unowned), most contacted, some won or lost, a few overdue; then
VACUUM ANALYZE (as autovacuum would in time: index-only scans need the visibility map).

    .venv/bin/python bench/speed_by_owner.py
"""

import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.config import Settings, WebhookSettings
from app.db import make_engine, make_sessionmaker
from app.leads import stats
from app.migrate import upgrade

NAME = "leadheat_bench_speed"
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{NAME}"
LEADS, HOT, OWNERS = 200_000, 13_000, 10

FILL = """
INSERT INTO leads (id, site_id, created_at, updated_at, first_seen_at, visits, page_views,
    events_count, session_seconds, engaged_seconds, orders, revenue, identified, contacts,
    traits, interests, products_viewed, cart, status, score, temperature, became_hot_at,
    contact_by, first_contacted_at, owner_id, owner_assigned_at, lost_reason)
SELECT gen_random_uuid(), :site, now(), now(), now() - (n % 90) * interval '1 day',
    1, 1, 1, 0, 0, 0, 0, false, '{}', '{}', '{}', '[]', '{}',
    CASE WHEN hot IS NULL THEN 'new'
         WHEN m % 10 = 1 THEN 'won' WHEN m % 10 = 2 THEN 'lost'
         WHEN m % 50 = 3 THEN 'new' ELSE 'contacted' END,
    0, CASE WHEN hot IS NULL THEN 'cold' ELSE 'hot' END,
    hot, hot + interval '5 minutes',
    CASE WHEN hot IS NOT NULL AND m % 50 <> 3 THEN hot + (m % 1800) * interval '1 second' END,
    CASE WHEN hot IS NOT NULL AND m % 11 <> 0 THEN (:owners)[1 + m % :n_owners] END,
    hot,
    CASE WHEN hot IS NOT NULL AND m % 10 = 2 THEN 'bought_elsewhere' END
FROM generate_series(1, :leads) AS n,
    -- every `every`-th lead turned hot (m: which one), over the last 30 days
    LATERAL (SELECT n / :every AS m,
                    CASE WHEN n % :every = 0
                    THEN now() - ((n / :every) * 7 % 43200) * interval '1 minute' END AS hot) AS h
"""


async def timed(label: str, fn: Callable[[], Awaitable[object]], runs: int = 20) -> None:
    await fn()
    ms = []
    for _ in range(runs):
        t = time.perf_counter()
        await fn()
        ms.append((time.perf_counter() - t) * 1000)
    ms.sort()
    p95 = ms[int(0.95 * (len(ms) - 1))]
    print(f"{label}: median {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms")


async def main() -> None:
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{NAME}"')
    await admin.close()
    await asyncio.to_thread(upgrade, URL)
    engine = make_engine(Settings(database_url=URL))
    site = uuid.uuid4()
    owners = [str(uuid.uuid4()) for _ in range(OWNERS)]
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO sites (id, name, write_key, secret_key_hash, allowed_origins,"
                " created_at) VALUES (:s, 'bench', 'wk', 'sk', '[]', now())"
            ),
            {"s": site},
        )
        for i, owner in enumerate(owners):
            await conn.execute(
                text(
                    "INSERT INTO users (id, site_id, email, name, password_hash, role, active,"
                    " time_zone, working_hours, on_duty, on_call, created_at) VALUES (:u, :s,"
                    " :e, :e, 'x', 'manager', true, 'UTC', '{}', true, false, now())"
                ),
                {"u": uuid.UUID(owner), "s": site, "e": f"m{i}@bench.example"},
            )
        fill = FILL.replace(":owners", "CAST(:owners AS uuid[])")
        await conn.execute(
            text(fill),
            {
                "site": site,
                "every": LEADS // HOT,
                "owners": owners,
                "n_owners": OWNERS,
                "leads": LEADS,
            },
        )
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE leads"))
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)
    start, settings = now - timedelta(days=30), WebhookSettings()
    async with sessions() as session:
        print(
            "hot in the period",
            (await stats.speed_to_lead(session, site, start, now, settings, now))["hot_leads"],
        )

        async def team() -> object:
            return await stats.speed_to_lead(session, site, start, now, settings, now)

        async def per_owner() -> object:
            return await stats.speed_to_lead(
                session, site, start, now, settings, now, by_owner=True
            )

        await timed("team", team)
        await timed("team and per owner (by=owner)", per_owner)
        for label, sql in (
            (
                "per owner",
                "SELECT owner_id, count(*) FROM leads WHERE site_id = :s AND merged_into_id IS"
                " NULL AND became_hot_at >= :a AND became_hot_at < :b GROUP BY owner_id",
            ),
            (
                "overdue per owner",
                "SELECT owner_id, count(*) FROM leads WHERE site_id = :s AND merged_into_id IS"
                " NULL AND contact_by < :b AND first_contacted_at IS NULL AND status = 'new'"
                " GROUP BY owner_id",
            ),
        ):
            plan = await session.execute(
                text("EXPLAIN (ANALYZE, BUFFERS) " + sql), {"s": site, "a": start, "b": now}
            )
            print(f"-- {label}")
            print("\n".join(row[0] for row in plan))
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
