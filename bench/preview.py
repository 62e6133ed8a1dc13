"""Rule-set preview on a site with 100,000 stored events (1,000 leads x 100 events).

Creates a fresh PostgreSQL database (and, with --sqlite, a SQLite file), inserts the site's
leads and events in bulk (COPY on PostgreSQL, not through HTTP), then times
`POST /v1/rules/preview` through the app (httpx ASGITransport) with a draft that moves
thresholds and points, so that many leads change temperature.

    .venv/bin/python bench/preview.py                  # PostgreSQL
    .venv/bin/python bench/preview.py --sqlite         # and SQLite
"""

import argparse
import asyncio
import copy
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from cryptography.fernet import Fernet
from sqlalchemy import insert
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import onboarding  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import make_engine, make_sessionmaker  # noqa: E402
from app.domain import profile as lead_profile  # noqa: E402
from app.domain.lead_rows import LeadRow  # noqa: E402
from app.domain.tables import Event, Lead  # noqa: E402
from app.main import create_app  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.scoring import engine, scorer  # noqa: E402
from app.scoring.defaults import DEFAULT_RULE_SET  # noqa: E402
from app.scoring.scorer import default_definition, rule_set_for_version  # noqa: E402
from bench.ingest import asyncpg_dsn  # noqa: E402

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"
CATEGORIES = ["fridges", "washers", "ovens", "tvs", "phones", "laptops"]
CITIES = ["Moscow", "Kazan", "St Petersburg", "Yekaterinburg", "Novosibirsk", None]
# (weight, kind) by intent: most visitors browse, some shop, a few buy (docs/domain.md's mix).
BROWSING = [(50, "page"), (35, "Product Viewed"), (10, "Page Engaged"), (5, "Products Searched")]
SHOPPING = [*BROWSING, (6, "Product Added"), (2, "Product Removed"), (1, "Checkout Started")]
BUYING = [*SHOPPING, (2, "Checkout Started"), (1, "Cart Abandoned"), (1, "Order Completed")]
INTENTS = [(60, BROWSING), (30, SHOPPING), (9, BUYING), (1, [*BUYING, (1, "Contact Requested")])]


def draft_rule_set() -> dict[str, Any]:
    """The default rule set with cheaper browsing, dearer cart adds and lower thresholds."""
    draft = copy.deepcopy({k: v for k, v in DEFAULT_RULE_SET.items() if k != "version"})
    for rule in draft["behaviour"]:
        if rule["id"] == "product-viewed":
            rule["points"] = 2
        if rule["id"] == "product-added":
            rule["points"], rule["cap"] = 20, 40
    draft["thresholds"] = {"warm": 25, "hot": 55}
    draft["hysteresis_points"] = 0
    return draft


def generate(
    site_id: uuid.UUID, leads: int, per_lead: int, seed: int = 7
) -> tuple[list[LeadRow], list[dict[str, Any]]]:
    """Leads (profile rows) and their events: a few visits each over the last weeks."""
    rng = random.Random(seed)
    intents = [
        [k for w, k in mix for _ in range(w)] for weight, mix in INTENTS for _ in range(weight)
    ]
    lead_rows: list[LeadRow] = []
    event_rows: list[dict[str, Any]] = []
    for n in range(leads):
        kinds = rng.choice(intents)
        lead_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        anonymous_id = f"anon-{n}"
        profile = lead_profile.new_profile(lead_id, site_id, NOW)
        at = NOW - timedelta(days=rng.uniform(0, 30))
        visits, page_views = 1, 0
        interests: dict[str, int] = {}
        for i in range(per_lead):
            if rng.random() < 0.04:  # a new visit
                at += timedelta(hours=rng.uniform(1, 72))
                visits += 1
            at += timedelta(seconds=rng.uniform(5, 120))
            kind = rng.choice(kinds)
            category = rng.choice(CATEGORIES)
            product = f"{category}-{rng.randrange(200)}"
            url = f"https://shop.example/{category}/{product}"
            properties: dict[str, Any] = {}
            if kind in ("Product Viewed", "Product Added", "Product Removed"):
                properties = {"product_id": product, "category": category, "price": 499}
                interests[category] = interests.get(category, 0) + 1
            elif kind == "Page Engaged":
                properties = {"engaged_seconds": rng.randrange(10, 300)}
            elif kind == "Products Searched":
                properties = {"query": category}
            elif kind in ("Checkout Started", "Order Completed"):
                properties = {"order_id": f"o-{n}-{i}", "revenue": 499, "currency": "EUR"}
            if kind == "page":
                page_views += 1
            event_rows.append(
                {
                    "site_id": site_id,
                    "message_id": f"m-{n}-{i}",
                    "lead_id": lead_id,
                    "type": "page" if kind == "page" else "track",
                    "name": None if kind == "page" else kind,
                    "anonymous_id": anonymous_id,
                    "user_id": None,
                    "previous_id": None,
                    "timestamp": at,
                    "original_timestamp": at,
                    "sent_at": at,
                    "received_at": at,
                    "is_bot": False,
                    "properties": properties,
                    "traits": {},
                    "context": {"userAgent": UA, "page": {"url": url, "path": url[22:]}},
                }
            )
        profile.update(
            {
                "first_seen_at": event_rows[-per_lead]["timestamp"],
                "last_seen_at": at,
                "visits": visits,
                "page_views": page_views,
                "events_count": per_lead,
                "session_seconds": float(per_lead * 40),
                "city": rng.choice(CITIES),
                "interests": interests,
                "contacts": {"email": f"{n}@example.com"} if rng.random() < 0.3 else {},
            }
        )
        lead_rows.append(profile)
    return lead_rows, event_rows


def score_leads(leads: list[LeadRow], events: list[dict[str, Any]]) -> None:
    """Score each lead with the default rule set (version 1) from its events, as ingestion
    would have: stored state, score, temperature."""
    compiled = engine.compile_rule_set(rule_set_for_version(default_definition(), 1))
    by_lead: dict[uuid.UUID, list[tuple[Any, ...]]] = {}
    for e in events:
        row = (e["message_id"], e["type"], e["name"], e["properties"], e["context"], e["timestamp"])
        by_lead.setdefault(e["lead_id"], []).append(row)
    for profile in leads:
        history = scorer.stored_scoring_events(by_lead[profile["id"]], timedelta(minutes=30))
        result = engine.replay(compiled, history, scorer.facts_from_profile(profile), NOW)
        scorer.record_result(profile, result, NOW, compiled)


async def create_site(url: str) -> tuple[uuid.UUID, str]:
    engine = make_engine(Settings(database_url=url))
    async with make_sessionmaker(engine)() as session:
        created = await onboarding.create_site(session, "Preview bench shop")
        await session.commit()
    await engine.dispose()
    return created.site.id, created.secret_key


async def load_postgres(url: str, leads: list[LeadRow], events: list[dict[str, Any]]) -> None:
    import orjson

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for table, rows in (("leads", leads), ("events", events)):
            columns = list(rows[0])
            records = [
                tuple(
                    orjson.dumps(v).decode() if isinstance(v, dict | list) else v
                    for v in row.values()
                )
                for row in rows
            ]
            await conn.copy_records_to_table(table, records=records, columns=columns)
        await conn.execute("ANALYZE leads; ANALYZE events")
    finally:
        await conn.close()


async def load_sqlite(url: str, leads: list[LeadRow], events: list[dict[str, Any]]) -> None:
    engine = make_engine(Settings(database_url=url))
    async with engine.begin() as conn:
        await conn.execute(insert(Lead), leads)
        for start in range(0, len(events), 5000):
            await conn.execute(insert(Event), events[start : start + 5000])
    await engine.dispose()


async def fresh_postgres(url: str) -> None:
    admin = make_url(url).set(drivername="postgresql")
    conn = await asyncpg.connect(admin.set(database="postgres").render_as_string(False))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{admin.database}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{admin.database}"')
    finally:
        await conn.close()


async def time_preview(
    url: str, secret_key: str, runs: int
) -> tuple[list[float], list[float], dict[str, Any]]:
    """Seconds (wall clock, and this process's CPU) of each preview, and the last answer."""
    # A throwaway key: PostgreSQL refuses to start without one; no webhook secret is stored.
    key = os.environ.get("LEADHEAT_SECRETS_KEY") or Fernet.generate_key().decode()
    app = create_app(
        Settings(database_url=url, run_background=False, create_demo_site=False, secrets_key=key)
    )
    seconds: list[float] = []
    cpu_seconds: list[float] = []
    body: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for _ in range(runs):
                start, cpu = time.perf_counter(), time.process_time()
                r = await client.post(
                    "/v1/rules/preview",
                    headers={"Authorization": f"Bearer {secret_key}"},
                    json=draft_rule_set(),
                    params={"at": NOW.isoformat()},
                    timeout=120,
                )
                seconds.append(time.perf_counter() - start)
                cpu_seconds.append(time.process_time() - cpu)
                r.raise_for_status()
                body = r.json()
    return seconds, cpu_seconds, body


async def bench(name: str, url: str, args: argparse.Namespace) -> None:
    if name == "postgresql":
        await fresh_postgres(url)
    await asyncio.to_thread(upgrade, url)
    site_id, secret_key = await create_site(url)
    leads, events = generate(site_id, args.leads, args.events_per_lead)
    score_leads(leads, events)
    start = time.perf_counter()
    await (load_postgres if name == "postgresql" else load_sqlite)(url, leads, events)
    loaded = time.perf_counter() - start
    seconds, cpu_seconds, body = await time_preview(url, secret_key, args.runs)
    print(
        f"{name}: {body['leads']:,} leads, {body['events']:,} events (loaded in {loaded:.1f} s); "
        f"preview {min(seconds):.2f} s best, {statistics.median(seconds):.2f} s median "
        f"of {len(seconds)} (app CPU {min(cpu_seconds):.2f} s best); "
        f"active {body['active']}, draft {body['draft']}, "
        f"{body['changed']} leads change temperature",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/leadheat_bench_preview",
    )
    parser.add_argument("--sqlite", action="store_true", help="also time SQLite")
    parser.add_argument("--leads", type=int, default=1000)
    parser.add_argument("--events-per-lead", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(bench("postgresql", args.database_url, args))
    if args.sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(bench("sqlite", f"sqlite+aiosqlite:///{tmp}/preview.db", args))


if __name__ == "__main__":
    main()
