"""The cost of the rule-set warnings' one query: the event names a site sent in the last 30
days (app.scoring.warnings.seen_event_names), at 200,000 leads and 1.87 million events.

Fills a fresh PostgreSQL database directly with SQL (generate_series; the ingestion API would
take many minutes to store as much): leads last seen over the last 45 days, about 9 events
each (pages, product views, cart adds, checkouts, orders, ...) in the 10 days before, then
ANALYZE. Times the query as the preview and publish answers run it (median of `--runs`), for
comparison the whole window's `SELECT DISTINCT` over the site's events, and the read of the
latest leads' cities (app.scoring.warnings.seen_profile_values).

    .venv/bin/python bench/seen_events.py
    .venv/bin/python bench/seen_events.py --leads 20000 --events-per-lead 9.35
"""

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.db import make_engine  # noqa: E402
from app.scoring.warnings import (  # noqa: E402
    SEEN_WINDOW,
    seen_event_names,
    seen_profile_values,
)
from app.sites.models import Site  # noqa: E402
from bench.ingest import prepare_database  # noqa: E402

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/leadheat_bench_seen"
NAMES = [
    "Product Viewed", "Product Viewed", "Product Viewed", "Product Added", "Product Removed",
    "Checkout Started", "Order Completed", "Cart Abandoned", "Subscribed", "Contact Requested",
]  # fmt: skip

FILL_LEADS = """
INSERT INTO leads (id, site_id, created_at, updated_at, first_seen_at, last_seen_at, visits,
    page_views, events_count, session_seconds, engaged_seconds, orders, revenue, identified,
    contacts, traits, interests, products_viewed, cart, status, score, temperature, city)
SELECT md5('lead' || n)::uuid, CAST(:site AS uuid), now(), now(), now() - interval '60 days',
    now() - (n % 45) * interval '1 day' - (n % 1440) * interval '1 minute', 1, 1, 1, 0, 0, 0,
    0, false, '{}', '{}', '{}', '[]', '{}', 'new', 0, 'cold', 'City ' || n % 50
FROM generate_series(1, :leads) AS n
"""
# Half of all events are pages, the rest track events of NAMES (picked by a hash); each
# belongs to lead (n % leads) and happened up to 10 days before that lead was last seen.
FILL_EVENTS = """
INSERT INTO events (site_id, message_id, lead_id, type, name, timestamp, received_at, is_bot,
    properties, traits, context)
SELECT CAST(:site AS uuid), 'm' || n, md5('lead' || (n % :leads + 1))::uuid,
    CASE WHEN n % 2 = 0 THEN 'page' ELSE 'track' END,
    CASE WHEN n % 2 = 0 THEN NULL
        ELSE (CAST(:names AS text[]))[abs(hashtext(n::text)) % :name_count + 1] END,
    l.last_seen_at - (n % 240) * interval '1 hour', now(), false, '{}', '{}', '{}'
FROM generate_series(1, :events) AS n
JOIN leads AS l ON l.id = md5('lead' || (n % :leads + 1))::uuid
"""
WHOLE_WINDOW = """
SELECT DISTINCT type, name FROM events WHERE site_id = :site AND timestamp >= :since
"""


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--events-per-lead", type=float, default=9.35)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    await prepare_database(args.url)
    engine = make_engine(Settings(database_url=args.url))
    events = round(args.leads * args.events_per_lead)
    async with engine.begin() as conn:
        site = (await conn.execute(Site.__table__.select())).first()
        assert site is not None
        params = {"site": site.id, "leads": args.leads}
        started = time.perf_counter()
        await conn.execute(text(FILL_LEADS), params)
        await conn.execute(
            text(FILL_EVENTS),
            {**params, "events": events, "names": NAMES, "name_count": len(NAMES)},
        )
        print(
            f"filled {args.leads} leads, {events} events in {time.perf_counter() - started:.0f} s"
        )
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE leads"))
        await conn.execute(text("ANALYZE events"))

    now = datetime.now(UTC)
    for label, run in (
        ("seen_event_names (the site's latest events)", "sample"),
        ("whole window, SELECT DISTINCT (for comparison)", "whole"),
        ("seen_profile_values (cities of the latest leads)", "cities"),
    ):
        times = []
        for _ in range(args.runs):
            async with engine.connect() as conn:
                started = time.perf_counter()
                if run == "sample":
                    names = await seen_event_names(conn, site.id, now)
                elif run == "cities":
                    names = (await seen_profile_values(conn, site.id, now))["city"]
                else:
                    rows = await conn.execute(
                        text(WHOLE_WINDOW), {"site": site.id, "since": now - SEEN_WINDOW}
                    )
                    names = {row.name or row.type for row in rows}
                times.append(time.perf_counter() - started)
        print(
            f"{label}: {len(names)} names, median {statistics.median(times) * 1000:.1f} ms,"
            f" best {min(times) * 1000:.1f} ms of {args.runs}"
        )
    await engine.dispose()
    admin = make_url(args.url).set(drivername="postgresql")
    conn = await asyncpg.connect(admin.set(database="postgres").render_as_string(False))
    try:  # half a gigabyte: not left behind on a shared server
        await conn.execute(f'DROP DATABASE IF EXISTS "{admin.database}" WITH (FORCE)')
    finally:
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
