"""The floor of the stack: how fast batches can be stored when nothing else is done.

A measurement, not a product: a bare ASGI app under the same uvicorn set-up as `leadheat
serve` (2 workers, one socket each, the collector tuned) that, for each `POST /v1/batch`,
parses the body, validates every event with the service's own `validate_event`, and COPYs
the events into the service's `events` table in one durable transaction per request. No
write-key check, no duplicate lookup, no identities or leads, no profile, no scoring, no
webhooks: everything ingestion does beyond storing the events is left out. Whatever the
service does, it cannot be faster than this on the same machine; the gap between the two is
the cost of that work. Driven by wrk with bench/ingest.py's batch script.

    .venv/bin/python bench/floor.py                 # 2 workers, 16 connections, 20 s
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.db import utcnow  # noqa: E402
from app.domain.events import IngestEvent  # noqa: E402
from app.ingestion.bulk import _EVENT_JSON, EVENT_COLUMNS  # noqa: E402
from app.ingestion.parsing import validate_event  # noqa: E402
from app.ingestion.store import _event_row  # noqa: E402
from app.main import tune_gc  # noqa: E402
from app.recordsets import copy_records  # noqa: E402
from bench.ingest import (  # noqa: E402
    analyze,
    count_events,
    cpu_reference_us,
    cpu_seconds,
    prepare_database,
    run_wrk,
    wait_until_serving,
)


def create_floor_app() -> Any:
    dsn = os.environ["FLOOR_DSN"]
    state: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    pool = await asyncpg.create_pool(dsn, min_size=8, max_size=8)
                    state["pool"] = pool
                    state["site"] = await pool.fetchval("SELECT id FROM sites")
                    tune_gc()  # as `leadheat serve` does
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await state["pool"].close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        status, answer = 200, b'{"ok":true}'
        if scope["path"] == "/v1/batch":
            received = utcnow()
            events = [
                validate_event(
                    raw,
                    index=i,
                    forced_type=None,
                    batch_sent_at=None,
                    received_at=received,
                    max_event_bytes=32 * 1024,
                )
                for i, raw in enumerate(orjson.loads(body)["batch"])
            ]
            rows = [_event_row(state["site"], e) for e in events if isinstance(e, IngestEvent)]
            async with state["pool"].acquire() as conn, conn.transaction():
                await conn.copy_records_to_table(
                    "events",
                    records=copy_records(rows, EVENT_COLUMNS, _EVENT_JSON),
                    columns=EVENT_COLUMNS,
                )
            answer = orjson.dumps({"accepted": len(rows)})
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/leadheat_bench"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-connections", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--visitors", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    args.connections = args.batch_connections
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    write_key = asyncio.run(prepare_database(args.database_url))
    dsn = args.database_url.replace("postgresql+asyncpg://", "postgresql://")
    cpu_before = cpu_reference_us()
    code = (
        "from app import server; server.run('bench.floor:create_floor_app', factory=True, "
        f"host='127.0.0.1', port={port}, workers={args.workers}, log_level='warning', "
        "lifespan='on')"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "FLOOR_DSN": dsn}
    )
    try:
        wait_until_serving(proc, f"http://127.0.0.1:{port}/")
        run_wrk(port, write_key, "batch", args, args.warmup)
        asyncio.run(analyze(args.database_url))
        before = asyncio.run(count_events(args.database_url))
        cpu_start = cpu_seconds(proc.pid)
        r = run_wrk(port, write_key, "batch", args, args.duration)
        cpu_end = cpu_seconds(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    ok = (r["requests"] - r["non2xx"]) * args.batch_size
    stored = asyncio.run(count_events(args.database_url)) - before
    row = {
        "mode": "floor batch",
        "events_per_s": round(ok / (r["duration_us"] / 1e6)),
        "p50_ms": round(r["p50_us"] / 1000, 1),
        "p99_ms": round(r["p99_us"] / 1000, 1),
        "non_2xx": r["non2xx"],
        "events_acknowledged": ok,
        "events_stored": stored,
        "cpu_reference_us": [cpu_before, cpu_reference_us()],
        "cpu_us_per_event": {
            k: round((cpu_end[k] - cpu_start[k]) / max(ok, 1) * 1e6, 1) for k in cpu_end
        },
    }
    print(json.dumps(row))


if __name__ == "__main__":
    main()
