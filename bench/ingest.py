"""Ingestion throughput and latency against a real server and PostgreSQL, with durable commits.

Starts `leadheat serve` (N uvicorn workers) on a fresh PostgreSQL database, drives it with
wrk (C, so the load generator does not eat the Python server's CPU; `apt-get install wrk`),
then checks in the database that every event answered 2xx was stored.

Each mode first warms up (`--warmup` seconds of the same load), then runs ANALYZE, as
autovacuum would have done by then on a live database: a freshly created one has no
statistics, and plans made for empty tables are not the ones a shop's database runs.

    .venv/bin/python bench/ingest.py                 # both modes, defaults below
    .venv/bin/python bench/ingest.py --mode single --connections 64 --duration 20
    .venv/bin/python bench/ingest.py --mode single --audiences 0   # vs --audiences 5: the
                                                 # cost of keeping audience membership current
"""

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import delete  # noqa: E402

from app import onboarding  # noqa: E402
from app.audiences.endpoints import add_audience  # noqa: E402
from app.audiences.filters import AudienceFilters  # noqa: E402
from app.audiences.models import Audience  # noqa: E402
from app.audiences.schemas import AudienceIn  # noqa: E402
from app.audiences.starters import STARTER_AUDIENCES  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import make_engine, make_sessionmaker, utcnow  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from bench.procstat import processes  # noqa: E402

# `--audiences N`: the first N of these (the starters, and two that the bench's events match).
BENCH_AUDIENCES = [
    *STARTER_AUDIENCES,
    AudienceIn(
        name="Fridges, 3+ views",
        filters=AudienceFilters(interests=[{"category": "fridges", "min_views": 3}]),
    ),
    AudienceIn(
        name="Seen today, not identified",
        filters=AudienceFilters(last_seen_within_hours=24, identified=False),
    ),
]

LUA = r"""
local counter = 0
local tid = 0
local mode = "MODE"
local batch_size = BATCH
local visitors = VISITORS
local auth = "AUTH"
local ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) " ..
  "Chrome/126.0 Safari/537.36"
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  tid = wrk.thread:get("tid")
  math.randomseed(os.time() * 1000 + tid)
  run = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000))
end

local function event(visitor)
  counter = counter + 1
  return string.format(
    '{"type":"track","event":"Product Viewed","anonymousId":"v%d","messageId":"%s-%d-%d",' ..
    '"properties":{"product_id":"p%d","category":"fridges","price":499},' ..
    '"context":{"userAgent":"%s","page":{"url":"https://shop.example/fridges/p%d"}}}',
    visitor, run, tid, counter, counter % 500, ua, counter % 500)
end

function request()
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Basic " .. auth}
  if mode == "single" then
    return wrk.format("POST", "/v1/track", headers, event(math.random(1, visitors)))
  end
  local parts = {}
  local first = math.random(1, visitors)
  for i = 1, batch_size do
    -- a batch holds a few visitors' events, as a tracker's or a backend's would
    parts[i] = event((first + (i % 10)) % visitors + 1)
  end
  return wrk.format("POST", "/v1/batch", headers, '{"batch":[' .. table.concat(parts, ",") .. ']}')
end

function done(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"non2xx":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, non2xx, summary.errors.connect, summary.errors.read,
    summary.errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL (`postgresql+asyncpg://...`) as a DSN asyncpg connects to."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def prepare_database(url: str, audiences: int | None = None) -> str:
    admin = make_url(url).set(drivername="postgresql")
    name = admin.database
    conn = await asyncpg.connect(admin.set(database="postgres").render_as_string(False))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    await asyncio.to_thread(upgrade, url)
    engine = make_engine(Settings(database_url=url))
    async with make_sessionmaker(engine)() as session:
        created = await onboarding.create_site(session, "Bench shop")
        if audiences is not None:  # else the site's starter audiences, as a new shop has
            await session.execute(delete(Audience).where(Audience.site_id == created.site.id))
            for body in BENCH_AUDIENCES[:audiences]:
                (await add_audience(session, created.site.id, body, utcnow())).state = "ready"
        await session.commit()
    await engine.dispose()
    return created.write_key


async def count_events(url: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM events"))
    finally:
        await conn.close()


async def analyze(url: str) -> bool:
    """ANALYZE, as autovacuum would have by now; VACUUM ANALYZE where the server runs without
    autovacuum (some CI machines' PostgreSQL): a live database's dead rows are cleaned, and
    figures on a table three times its size in dead rows would not be a shop's. Answers
    whether it vacuumed."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        vacuum = await conn.fetchval("SHOW autovacuum") == "off"
        await conn.execute("VACUUM ANALYZE" if vacuum else "ANALYZE")
        return vacuum
    finally:
        await conn.close()


def start_server(url: str, port: int, workers: int, scoring: bool) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LEADHEAT_DATABASE_URL": url,
        "LEADHEAT_CREATE_DEMO_SITE": "false",
        "LEADHEAT_LOG_LEVEL": "warning",
        "LEADHEAT_SCORING__ENABLED": "true" if scoring else "false",
        # PostgreSQL needs a key for webhook secrets; a fresh database can take a new one.
        "LEADHEAT_SECRETS_KEY": os.environ.get("LEADHEAT_SECRETS_KEY")
        or Fernet.generate_key().decode(),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "serve",
            "--no-migrate",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    wait_until_serving(proc, f"http://127.0.0.1:{port}/health")
    return proc


def wait_until_serving(proc: subprocess.Popen[bytes], url: str) -> None:
    """Wait up to 30 s for `url` to answer 200; kill the server if it does not."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def cpu_reference_us() -> float:
    """How fast this machine's CPU is right now: best of 5 x 2,000 `sum(range(1000))`, in us.
    Shared machines vary (seen here: 15 to 28 us within minutes); quote it with the figures."""
    import timeit

    return round(min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6, 1)


def cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU time used so far by the server (its processes) and by PostgreSQL (all its
    processes), from /proc; wrk's comes from the children's rusage once it has exited."""
    import resource

    used = {"server": 0.0, "postgres": 0.0}
    for pid, (comm, ppid, seconds) in processes().items():
        if pid == server_pid or ppid == server_pid:
            used["server"] += seconds
        elif comm == "postgres":
            used["postgres"] += seconds
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    used["wrk"] = children.ru_utime + children.ru_stime
    return used


def run_wrk(
    port: int, write_key: str, mode: str, args: argparse.Namespace, duration: int
) -> dict[str, float]:
    import base64

    auth = base64.b64encode(f"{write_key}:".encode()).decode()
    script = (
        LUA.replace("MODE", mode)
        .replace("BATCH", str(args.batch_size))
        .replace("VISITORS", str(args.visitors))
        .replace("AUTH", auth)
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    connections = args.connections if mode == "single" else args.batch_connections
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "2",
            "-c",
            str(connections),
            "-d",
            f"{duration}s",
            "--timeout",
            "10s",
            "-s",
            f.name,
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(f.name)
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    result: dict[str, float] = json.loads(line.removeprefix("RESULT "))
    result["connections"] = connections
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/leadheat_bench"
    )
    parser.add_argument("--mode", choices=["single", "batch", "both"], default="both")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64, help="concurrency, single mode")
    parser.add_argument("--batch-connections", type=int, default=16, help="concurrency, batch mode")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--visitors", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=20, help="seconds per mode")
    parser.add_argument(
        "--warmup", type=int, default=5, help="seconds of load before ANALYZE and the measurement"
    )
    parser.add_argument("--no-scoring", action="store_true", help="scoring off (for comparison)")
    parser.add_argument(
        "--audiences",
        type=int,
        choices=range(len(BENCH_AUDIENCES) + 1),
        help="the site's audiences: this many (default: a new site's starters)",
    )
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench/ingest.py drives the server with wrk: apt-get install wrk")

    if not args.port:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            args.port = sock.getsockname()[1]
    results = []
    for mode in ["single", "batch"] if args.mode == "both" else [args.mode]:
        write_key = asyncio.run(prepare_database(args.database_url, args.audiences))
        cpu_before = cpu_reference_us()
        server = start_server(args.database_url, args.port, args.workers, not args.no_scoring)
        per_request = 1 if mode == "single" else args.batch_size
        try:
            before = 0
            if args.warmup:
                w = run_wrk(args.port, write_key, mode, args, args.warmup)
                asyncio.run(analyze(args.database_url))
                before = asyncio.run(count_events(args.database_url))
                if before < (w["requests"] - w["non2xx"]) * per_request:
                    raise SystemExit("LOST EVENTS during the warm-up")
            cpu_start = cpu_seconds(server.pid)
            r = run_wrk(args.port, write_key, mode, args, args.duration)
            cpu_end = cpu_seconds(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
        ok_requests = r["requests"] - r["non2xx"]
        stored = asyncio.run(count_events(args.database_url)) - before
        seconds = r["duration_us"] / 1e6
        row = {
            "mode": mode,
            "events_per_request": per_request,
            "connections": r["connections"],
            "workers": args.workers,
            "scoring": not args.no_scoring,
            "audiences": args.audiences,
            "requests_per_s": round(r["requests"] / seconds),
            "events_per_s": round(ok_requests * per_request / seconds),
            "p50_ms": round(r["p50_us"] / 1000, 1),
            "p90_ms": round(r["p90_us"] / 1000, 1),
            "p99_ms": round(r["p99_us"] / 1000, 1),
            "non_2xx": r["non2xx"],
            "socket_errors": r["connect_errors"] + r["read_errors"] + r["timeouts"],
            "events_acknowledged": ok_requests * per_request,
            "events_stored": stored,
            "cpu_reference_us": [cpu_before, cpu_reference_us()],
            # CPU time per acknowledged event while measuring: where the time goes, and a
            # figure that moves less than events/s when the machine's speed does.
            "cpu_us_per_event": {
                k: round((cpu_end[k] - cpu_start[k]) / max(ok_requests * per_request, 1) * 1e6, 1)
                for k in cpu_end
            },
        }
        results.append(row)
        print(json.dumps(row), flush=True)
        if stored < row["events_acknowledged"]:
            raise SystemExit("LOST EVENTS: fewer stored than acknowledged")

    print()
    print(
        "| mode | events/request | connections | events/s | p50 ms | p99 ms | non-2xx "
        "| CPU us/event: server, PostgreSQL, wrk | cpu ref |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in results:
        ref = "/".join(str(x) for x in row["cpu_reference_us"])
        cpu = ", ".join(str(x) for x in row["cpu_us_per_event"].values())
        print(
            f"| {row['mode']} | {row['events_per_request']} | {row['connections']} | "
            f"{row['events_per_s']:,} | {row['p50_ms']} | {row['p99_ms']} | {row['non_2xx']} | "
            f"{cpu} | {ref} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
