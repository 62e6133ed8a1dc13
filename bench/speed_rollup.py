"""Speed to lead from its rollup against the read of the period's leads it replaced, on a
site of 200k leads (13k turned hot in the last 30 days, 10 owners), timed in-process (the
queries and the Python around them, no HTTP; the garbage collector tuned as in a server
process, `app.main.tune_gc`), for the team and per owner.

A database of its own (dropped first), migrated to head, the leads (`FILL`) written by SQL
(waits of 0-30 minutes in whole seconds), then ANALYZE (no VACUUM: as right after writes, the
visibility map is not set and an index-only scan visits the heap), one rollup pass (timed), and
20 calls of each path after one warm-up. Then again after 1,000 leads changed since the pass
(their deltas pending), and after VACUUM ANALYZE. Each pair of answers is checked: equal, but
for the median and p90, which may differ by a bucket's width (10 s for waits of 10 minutes to
an hour).

    .venv/bin/python bench/speed_rollup.py [hot leads, 13000 by default]

(`100000` turns every other lead hot: the cost of each path as the hot leads grow tenfold.)
"""

import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.config import Settings, WebhookSettings
from app.db import make_engine, make_sessionmaker
from app.leads import rollup, stats
from app.main import tune_gc
from app.migrate import upgrade
from bench.timing import line, timed

NAME = "leadheat_bench_speed_rollup"
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


def agree(new: dict[str, Any], old: dict[str, Any]) -> None:
    """Equal but for the median and p90, within a bucket's width (10 s under an hour)."""
    for figures_new, figures_old in [
        (new, old),
        *zip(new.get("by_owner") or [], old.get("by_owner") or [], strict=True),
    ]:
        for key, value in figures_old.items():
            if key == "by_owner":
                continue
            if key in ("median_seconds", "p90_seconds") and value is not None:
                assert 0 <= figures_new[key] - value <= 10, (key, figures_new[key], value)
            else:
                assert figures_new[key] == value, (key, figures_new[key], value)


async def compare(sessions: Any, site: uuid.UUID, label: str) -> None:
    now = datetime.now(UTC)
    start, settings = now - timedelta(days=30), WebhookSettings()
    print(label)
    async with sessions() as session:
        for by_owner in (False, True):

            def call(use_rollup: bool, by_owner: bool = by_owner) -> Awaitable[dict[str, Any]]:
                return stats.speed_to_lead(
                    session, site, start, now, settings, now, by_owner=by_owner, rollup=use_rollup
                )

            agree(await call(True), await call(False))
            what = "team and per owner (by=owner)" if by_owner else "team"
            print("  " + line(f"{what}, leads of the period", await timed(lambda: call(False))))
            print("  " + line(f"{what}, rollup", await timed(lambda: call(True))))


async def main(hot: int) -> None:
    print(f"{LEADS} leads, {hot} turned hot in the last 30 days, {OWNERS} owners")
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
        await conn.execute(
            text(FILL.replace(":owners", "CAST(:owners AS uuid[])")),
            {
                "site": site,
                "every": LEADS // hot,
                "owners": owners,
                "n_owners": OWNERS,
                "leads": LEADS,
            },
        )
        await conn.execute(text("ANALYZE leads"))
    t = time.perf_counter()
    steps = await rollup.roll_up(engine, datetime.now(UTC))
    print(f"first rollup pass (funnel and speed to lead, 90 days): {steps} steps,", end=" ")
    print(f"{(time.perf_counter() - t) * 1000:.0f} ms")
    async with engine.connect() as conn:
        counts = await conn.scalar(text("SELECT count(*) FROM speed_counts"))
        print(f"speed_counts rows: {counts}")
    sessions = make_sessionmaker(engine)
    # The collector as a server process has it: else a full collection of all this process
    # holds lands in one timed call of twenty (60-110 ms).
    tune_gc()
    await compare(sessions, site, "right after the writes (no VACUUM):")
    async with engine.begin() as conn:  # 1,000 hot leads change: handed over, won
        await conn.execute(
            text(
                "UPDATE leads SET owner_id = CAST(:o AS uuid), status = 'won' WHERE id IN"
                " (SELECT id FROM leads WHERE became_hot_at > now() - interval '20 days'"
                " ORDER BY id LIMIT 1000)"
            ),
            {"o": owners[0]},
        )
    async with engine.connect() as conn:
        pending = await conn.scalar(text("SELECT count(*) FROM speed_deltas"))
    await compare(sessions, site, f"with 1,000 leads changed since the pass ({pending} deltas):")
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))
    await compare(sessions, site, "after VACUUM ANALYZE:")
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else HOT))
