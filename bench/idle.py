"""What an idle deployment costs: `leadheat serve --workers N` on a fresh PostgreSQL database,
nothing sent, for `--seconds`: the server's and PostgreSQL's CPU (share of one core, from
/proc) and the database's transactions per second, with the tables they read (scans per
table, from pg_stat_user_tables: which loops poll).

    .venv/bin/python bench/idle.py --seconds 60
    .venv/bin/python bench/idle.py --reuse \
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/leadheat_bench_rescore

`--reuse` measures a database as it is (a large site another bench loaded: the loops whose work
grows with a site, the refresher's and the rollup's, are in it).
"""

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.hot_to_webhook import free_port  # noqa: E402
from bench.ingest import (  # noqa: E402
    asyncpg_dsn,
    cpu_seconds,
    prepare_database,
    start_server,
)
from bench.procstat import process_cpu  # noqa: E402

STATS = """
SELECT (SELECT xact_commit + xact_rollback FROM pg_stat_database
        WHERE datname = current_database()) AS xacts,
       coalesce(json_object_agg(relname, seq_scan + coalesce(idx_scan, 0)), '{}') AS scans
FROM pg_stat_user_tables
"""


async def database_stats(dsn: str) -> tuple[int, dict[str, int], list[int]]:
    """Transactions so far, scans by table, and the pids of the database's other backends."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        row = await conn.fetchrow(STATS)
        pids = await conn.fetch(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(row["xacts"]), json.loads(row["scans"]), [r["pid"] for r in pids]
    finally:
        await conn.close()


def backends_cpu(pids: list[int]) -> float:
    """CPU seconds used so far by these PostgreSQL backends (the server's connections: other
    databases on the same PostgreSQL are not counted)."""
    used = 0.0
    for pid in pids:
        try:
            used += process_cpu(pid)[2]
        except OSError:  # gone meanwhile
            continue
    return used


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if not args.reuse:
        await prepare_database(args.database_url)
    dsn = asyncpg_dsn(args.database_url)
    server = await asyncio.to_thread(
        start_server, args.database_url, free_port(), args.workers, True
    )
    try:
        await asyncio.sleep(args.warm_up)  # the start's own work (migrations' checks, caches)
        # pg_stat counters reach the view within a second or so (stats_fetch_consistency).
        xacts0, scans0, pids = await database_stats(dsn)
        before, start = cpu_seconds(server.pid), time.monotonic()
        backends0 = backends_cpu(pids)
        await asyncio.sleep(args.seconds)  # the measurement window itself
        after, elapsed = cpu_seconds(server.pid), time.monotonic() - start
        backends1 = backends_cpu(pids)
        xacts1, scans1, pids1 = await database_stats(dsn)
    finally:
        server.terminate()
        server.wait(timeout=30)
    scans = {t: n - scans0.get(t, 0) for t, n in scans1.items() if n - scans0.get(t, 0)}
    return {
        "workers": args.workers,
        "seconds": round(elapsed, 1),
        "server_percent": round((after["server"] - before["server"]) / elapsed * 100, 2),
        # The server's PostgreSQL backends (those connected at the start and still at the end).
        "postgres_backends_percent": round((backends1 - backends0) / elapsed * 100, 2),
        "postgres_backends": len(set(pids) & set(pids1)),
        # Our own two stats queries are in it: 2 transactions.
        "transactions_per_second": round((xacts1 - xacts0) / elapsed, 2),
        "table_scans_per_second": {
            t: round(n / elapsed, 2) for t, n in sorted(scans.items(), key=lambda x: -x[1])
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/leadheat_bench_idle"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warm-up", type=float, default=10.0)
    parser.add_argument("--reuse", action="store_true", help="the database as it is")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
