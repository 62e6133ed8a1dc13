"""The read paths, re-scoring and background work as a site grows: 10k, 50k, 200k leads.

Starts `leadheat serve` on a fresh PostgreSQL database (bench/ingest.py's helpers), creates a
site, and grows it through the real ingestion API (POST /v1/batch from several concurrent
clients) to each size in turn, with a shop's mix: several visits per visitor over the last 30
days, product views by category, cart adds, some checkouts and orders, identifies with an
email and a city for about a fifth, and a few leads with about 300 events. At each size it
runs ANALYZE (VACUUM ANALYZE where the server's autovacuum is off, as autovacuum would have
cleaned the loading's dead rows), then times (with the site's secret key):

- one pass of the funnel's rollup (app.leads.rollup), as the server's loop would run next;
- the leads list (recent, 10 pages by cursor, score, temperature=hot, and each other filter),
  a heavy lead's card, the funnel and speed-to-lead: median and p95 of `--reads` calls each;
- a preview job (POST /v1/rules/preview/jobs) with one rule's points changed, until done;
- PUT /v1/rules with that change, until its re-scoring job is done;
- one temperature-refresher pass (app.scoring.rescoring.refresh_temperatures, run in this
  process against the same database, at a moment when every warm and hot lead is due);
- the server's idle CPU (its processes and PostgreSQL's, from /proc) over `--idle-seconds`,
  twice: the window right after the jobs (the rollup folding their changes, the refresher's
  due leads) and the next one (what an idle site costs once that is done).

    .venv/bin/python bench/scale.py                            # 10k, 50k, 200k leads
    .venv/bin/python bench/scale.py --sizes 2000,5000 --json scale.json
"""

import argparse
import asyncio
import copy
import functools
import json
import random
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.background import BackgroundContext  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import make_engine, make_sessionmaker, writer  # noqa: E402
from app.leads.rollup import roll_up  # noqa: E402
from app.main import tune_gc  # noqa: E402
from app.scoring.rescoring import refresh_temperatures  # noqa: E402
from app.scoring.scorer import RuleSetCache  # noqa: E402
from app.webhooks.consumer import WebhookConsumer  # noqa: E402
from bench.hot_to_webhook import bench_site, free_port  # noqa: E402
from bench.ingest import (  # noqa: E402
    analyze,
    asyncpg_dsn,
    cpu_reference_us,
    cpu_seconds,
    prepare_database,
    start_server,
)
from bench.preview import CATEGORIES, CITIES, INTENTS, UA  # noqa: E402
from bench.timing import timed  # noqa: E402

HEAVY_EVERY = 5000  # one lead in this many has about 300 events
HEAVY_EVENTS = 300
CART_EVENTS = {"Product Added", "Product Removed", "Checkout Started", "Order Completed"}

Json = dict[str, Any]


def lead_events(n: int, seed: int, mean_events: float, now: datetime) -> list[Json]:
    """Lead number n's events in time order, the same for the same seed whatever the sizes."""
    rng = random.Random(seed * 1_000_003 + n)
    anonymous_id = f"v{n}"
    # The visitor's intent (browsing, shopping, buying), then its kinds of event by weight.
    mix = rng.choices([m for _, m in INTENTS], [w for w, _ in INTENTS])[0]
    kinds = [kind for weight, kind in mix for _ in range(weight)]
    heavy = n % HEAVY_EVERY == 17
    count = HEAVY_EVENTS if heavy else max(1, round(rng.expovariate(1 / mean_events)))
    visits = 12 if heavy else min(count, 1 + round(rng.expovariate(1 / 2)))
    # Events split over the visits; the visits are an hour to two days apart (a new visit
    # starts after 30 minutes of silence), the first within the last 30 days.
    at = now - timedelta(days=rng.uniform(0, 30))
    events: list[Json] = []
    identify_at = rng.randrange(count) if rng.random() < 0.2 else -1
    for i in range(count):
        if i and rng.random() < (visits - 1) / count:
            at += timedelta(hours=rng.uniform(1, 48))
        at += timedelta(seconds=rng.uniform(5, 90))
        if i == identify_at:
            events.append(
                {
                    "type": "identify",
                    "anonymousId": anonymous_id,
                    "userId": f"u{n}",
                    "traits": {"email": f"visitor{n}@example.com", "city": rng.choice(CITIES)},
                    "timestamp": at,
                }
            )
            continue
        kind = rng.choice(kinds)
        category = rng.choice(CATEGORIES)
        product = f"{category}-{rng.randrange(200)}"
        url = f"https://shop.example/{category}/{product}"
        event: Json = {"anonymousId": anonymous_id, "timestamp": at}
        event["context"] = {"userAgent": UA, "page": {"url": url, "path": url[22:]}}
        if kind == "page":
            event["type"] = "page"
        else:
            event["type"], event["event"] = "track", kind
            if kind in ("Product Viewed", *CART_EVENTS):
                event["properties"] = {"product_id": product, "category": category, "price": 499}
            if kind in ("Checkout Started", "Order Completed"):
                event["properties"] = {"order_id": f"o-{n}-{i}", "revenue": 499, "currency": "EUR"}
            elif kind == "Page Engaged":
                event["properties"] = {"engaged_seconds": rng.randrange(10, 300)}
            elif kind == "Products Searched":
                event["properties"] = {"query": category}
        events.append(event)
    # Past events only: a lead whose visits ran beyond now is moved back, gaps kept.
    overflow = events[-1]["timestamp"] - (now - timedelta(minutes=1))
    for event in events:
        if overflow > timedelta(0):
            event["timestamp"] -= overflow
        event["timestamp"] = event["timestamp"].isoformat()
    return events


def batches(
    first: int, last: int, args: argparse.Namespace, now: datetime
) -> Iterator[tuple[int, list[Json]]]:
    """Whole leads' events (a lead's in one batch, in order) in batches of about
    `--batch-events`; with the number of leads in each."""
    batch: list[Json] = []
    leads = 0
    for n in range(first, last):
        batch.extend(lead_events(n, args.seed, args.events_per_lead, now))
        leads += 1
        if len(batch) >= args.batch_events:
            yield leads, batch
            batch, leads = [], 0
    if batch:
        yield leads, batch


async def grow(
    client: httpx.AsyncClient, write_key: str, first: int, last: int, args: argparse.Namespace
) -> Json:
    """Send leads first..last-1 through POST /v1/batch from `--clients` concurrent senders."""
    queue: asyncio.Queue[list[Json] | None] = asyncio.Queue(maxsize=args.clients * 2)
    sent = {"events": 0, "requests": 0}

    async def sender() -> None:
        while (batch := await queue.get()) is not None:
            r = await client.post("/v1/batch", auth=(write_key, ""), json={"batch": batch})
            if r.status_code != 200:
                raise SystemExit(f"POST /v1/batch answered {r.status_code}: {r.text[:500]}")
            sent["events"] += len(batch)
            sent["requests"] += 1

    start = time.perf_counter()
    senders = [asyncio.create_task(sender()) for _ in range(args.clients)]
    try:
        for _, batch in batches(first, last, args, datetime.now(UTC)):
            await queue.put(batch)
            if any(task.done() for task in senders):
                break  # a sender failed: its exception is raised below
        for _ in senders:
            await queue.put(None)
        await asyncio.gather(*senders)
    finally:
        for task in senders:
            task.cancel()
    seconds = time.perf_counter() - start
    return {
        "leads_added": last - first,
        "events_added": sent["events"],
        "seconds": round(seconds, 1),
        "events_per_s": round(sent["events"] / seconds),
    }


async def get_json(client: httpx.AsyncClient, path: str, **params: Any) -> Json:
    r = await client.get(path, params=params)
    if r.status_code != 200:
        raise SystemExit(f"GET {path} answered {r.status_code}: {r.text[:500]}")
    body: Json = r.json()
    return body


async def heavy_lead(url: str) -> str:
    """The live lead with the most events (one of the ~300-event ones)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return str(
            await conn.fetchval(
                "SELECT id FROM leads WHERE merged_into_id IS NULL "
                "ORDER BY events_count DESC LIMIT 1"
            )
        )
    finally:
        await conn.close()


LIST_FILTERS: dict[str, dict[str, Any]] = {
    "sort=recent&temperature=hot": {"sort": "recent", "temperature": "hot"},
    "status=new": {"status": "new"},
    "status=won": {"status": "won"},
    "sort=recent&status=won": {"sort": "recent", "status": "won"},
    "identified=true": {"identified": "true"},
    "min_score=30": {"min_score": 30},
    f"city={CITIES[0]}": {"city": CITIES[0]},
    f"interest={CATEGORIES[0]}": {"interest": CATEGORIES[0]},
    "updated_since=1h ago": {"updated_since": (datetime.now(UTC) - timedelta(hours=1)).isoformat()},
}


async def measure_reads(client: httpx.AsyncClient, url: str, runs: int) -> dict[str, Json]:
    lead_id = await heavy_lead(url)
    # This client's collector as the server's: a full collection of what the loading left in
    # this process would land in one timed call, a pause of the client, not of the server.
    tune_gc()

    async def pages() -> None:
        cursor = None
        for _ in range(10):
            params = {"sort": "recent", "limit": 50, **({"cursor": cursor} if cursor else {})}
            cursor = (await get_json(client, "/v1/leads", **params))["next_cursor"]
            if cursor is None:
                break

    reads: dict[str, Callable[[], Awaitable[Any]]] = {
        "GET /v1/leads?sort=recent&limit=50": lambda: get_json(
            client, "/v1/leads", sort="recent", limit=50
        ),
        "10 pages of sort=recent by cursor (total)": pages,
        "GET /v1/leads?sort=score&limit=50": lambda: get_json(
            client, "/v1/leads", sort="score", limit=50
        ),
        "GET /v1/leads?temperature=hot": lambda: get_json(client, "/v1/leads", temperature="hot"),
        # Every other filter the list offers, with the default sort (score) and by recency; a
        # filter few leads match (status=won: none here) is the worst case of a keyset walk.
        **{
            f"GET /v1/leads?{query}": functools.partial(get_json, client, "/v1/leads", **params)
            for query, params in LIST_FILTERS.items()
        },
        "GET /v1/leads/{id} (~300 events)": lambda: get_json(client, f"/v1/leads/{lead_id}"),
        "GET /v1/stats/funnel": lambda: get_json(client, "/v1/stats/funnel"),
        "GET /v1/stats/speed-to-lead": lambda: get_json(client, "/v1/stats/speed-to-lead"),
    }
    return {name: await timed(call, runs) for name, call in reads.items()}


async def measure_rules(client: httpx.AsyncClient, bump: int) -> dict[str, Json]:
    """Preview, then publish, the active rule set with one rule's points changed."""
    draft = copy.deepcopy(await get_json(client, "/v1/rules"))
    rule = next(r for r in draft["behaviour"] if r["id"] == "product-viewed")
    rule["points"] += bump
    start = time.perf_counter()
    r = await client.post("/v1/rules/preview/jobs", json=draft)
    if r.status_code != 202:
        raise SystemExit(f"POST /v1/rules/preview/jobs answered {r.status_code}: {r.text[:500]}")
    preview = r.json()
    while preview["status"] not in ("done", "failed", "cancelled"):
        await asyncio.sleep(0.1)  # polling the job, as a client would
        preview = await get_json(client, preview["url"])
    preview_ms = (time.perf_counter() - start) * 1000
    if preview["status"] != "done":
        raise SystemExit(f"the preview job ended {preview['status']}: {preview['error']}")
    changed = preview["result"]["changed"]
    start = time.perf_counter()
    r = await client.put("/v1/rules", json=draft, timeout=600)
    if r.status_code != 200:
        raise SystemExit(f"PUT /v1/rules answered {r.status_code}: {r.text[:500]}")
    job = r.json()["job"]
    while job["status"] not in ("done", "failed"):
        await asyncio.sleep(0.1)  # polling the job, as a client would
        job = await get_json(client, job["url"])
    publish_ms = (time.perf_counter() - start) * 1000
    if job["status"] != "done":
        raise SystemExit(f"the re-scoring job failed: {job['error']}")
    return {
        "preview job until done": {"ms": round(preview_ms, 1), "changed": changed},
        "PUT /v1/rules until re-scored": {"ms": round(publish_ms, 1), "leads": job["total"]},
    }


async def refresher_pass(url: str) -> Json:
    """One refresh_temperatures pass as the server's refresher runs it, at a moment when every
    warm and hot lead is due (a refresh interval after now)."""
    settings = Settings(database_url=url)
    engine = make_engine(settings)
    rule_sets = RuleSetCache(settings.scoring.rule_set_cache_seconds)
    context = BackgroundContext(
        settings,
        engine,
        make_sessionmaker(writer(engine)),
        rule_sets,
        lead_changes=WebhookConsumer(settings.webhooks, rule_sets),
    )
    due = datetime.now(UTC) + timedelta(seconds=settings.scoring.refresh_interval_seconds + 1)
    try:
        start = time.perf_counter()
        written = await refresh_temperatures(context, due)
        return {"ms": round((time.perf_counter() - start) * 1000, 1), "written": written}
    finally:
        await engine.dispose()


async def rollup_pass(url: str) -> Json:
    """One pass of the funnel's rollup loop (app.leads.rollup) after the load: the days the
    load changed counted again."""
    engine = make_engine(Settings(database_url=url))
    try:
        start = time.perf_counter()
        steps = await roll_up(engine, datetime.now(UTC))
        return {"ms": round((time.perf_counter() - start) * 1000, 1), "steps": steps}
    finally:
        await engine.dispose()


async def idle_cpu(server_pid: int, seconds: float) -> Json:
    """Share of one core the server's processes (and PostgreSQL's) used while nothing was sent."""
    before, start = cpu_seconds(server_pid), time.monotonic()
    await asyncio.sleep(seconds)  # the measurement window itself, not a wait for a condition
    after, elapsed = cpu_seconds(server_pid), time.monotonic() - start
    return {
        "server_percent": round((after["server"] - before["server"]) / elapsed * 100, 2),
        "postgres_percent": round((after["postgres"] - before["postgres"]) / elapsed * 100, 2),
        "seconds": round(elapsed, 1),
    }


async def run(args: argparse.Namespace) -> list[Json]:
    await prepare_database(args.database_url)
    write_key, secret_key = (await bench_site(args.database_url)).split("\n")
    port = args.port or free_port()
    server = await asyncio.to_thread(start_server, args.database_url, port, args.workers, True)
    base = f"http://127.0.0.1:{port}"
    results: list[Json] = []
    try:
        limits = httpx.Limits(max_connections=args.clients + 4)
        bearer = {"Authorization": f"Bearer {secret_key}"}
        async with (
            httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as ingest,
            httpx.AsyncClient(base_url=base, headers=bearer, timeout=120) as api,
        ):
            loaded = 0
            for step, size in enumerate(args.sizes, 1):
                load = await grow(ingest, write_key, loaded, size, args)
                loaded = size
                print(f"{size:,} leads: loaded {json.dumps(load)}", flush=True)
                vacuumed = await analyze(args.database_url)
                # The machine's speed now (shared machines vary): quote it with the figures.
                row: Json = {"leads": size, "load": load, "cpu_reference_us": cpu_reference_us()}
                row["vacuumed"] = vacuumed  # autovacuum off on this server: VACUUM ANALYZE
                # The server's rollup loop runs every minute; one pass now, as it would next.
                row["funnel_rollup"] = await rollup_pass(args.database_url)
                row["reads"] = await measure_reads(api, args.database_url, args.reads)
                row["rules"] = await measure_rules(api, step)
                row["refresher"] = await refresher_pass(args.database_url)
                row["idle_cpu"] = await idle_cpu(server.pid, args.idle_seconds)
                row["idle_cpu_next"] = await idle_cpu(server.pid, args.idle_seconds)
                print(json.dumps(row), flush=True)
                results.append(row)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return results


def table(results: list[Json]) -> str:
    head = "| path | " + " | ".join(f"{r['leads']:,} leads" for r in results) + " |"
    lines = [head, "|---|" + "---|" * len(results)]
    for name in results[0]["reads"]:
        cells = [f"{r['reads'][name]['median_ms']} / {r['reads'][name]['p95_ms']}" for r in results]
        lines.append(f"| {name}: median / p95 ms | " + " | ".join(cells) + " |")
    for name in results[0]["rules"]:
        lines.append(
            f"| {name}: ms | " + " | ".join(str(r["rules"][name]["ms"]) for r in results) + " |"
        )
    cells = [f"{r['funnel_rollup']['ms']} ({r['funnel_rollup']['steps']} steps)" for r in results]
    lines.append("| funnel rollup, one pass after the load: ms | " + " | ".join(cells) + " |")
    cells = [f"{r['refresher']['ms']} ({r['refresher']['written']:,} written)" for r in results]
    lines.append("| temperature refresher, one pass: ms | " + " | ".join(cells) + " |")
    for key, when in (("idle_cpu", "right after the jobs"), ("idle_cpu_next", "the next window")):
        cells = [f"{r[key]['server_percent']} + {r[key]['postgres_percent']} %" for r in results]
        lines.append(
            f"| idle CPU, server + PostgreSQL (of one core), {when} | " + " | ".join(cells) + " |"
        )
    cells = [f"{r['load']['events_added']:,} in {r['load']['seconds']} s" for r in results]
    lines.append("| events added to reach the size | " + " | ".join(cells) + " |")
    cells = [str(r["cpu_reference_us"]) for r in results]
    lines.append("| CPU reference (bench/ingest.py), us | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/leadheat_bench_scale",
    )
    parser.add_argument(
        "--sizes",
        type=lambda text: sorted(int(x) for x in text.split(",")),
        default=[10_000, 50_000, 200_000],
        help="lead counts to measure at, the database growing from one to the next",
    )
    parser.add_argument("--events-per-lead", type=float, default=9.0, help="mean")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2, help="server processes")
    parser.add_argument("--clients", type=int, default=4, help="concurrent ingestion clients")
    parser.add_argument("--batch-events", type=int, default=300, help="events per POST /v1/batch")
    parser.add_argument("--reads", type=int, default=20, help="timed calls of each read path")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    print()
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
