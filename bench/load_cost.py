"""What loading leads costs the server and its database: `leadheat serve --workers 2` on a
fresh PostgreSQL database, `--leads` leads sent through POST /v1/batch as bench/scale.py
sends them; the server's CPU seconds, its PostgreSQL backends' CPU seconds, the database's
transactions and scans by table (over 50) during the load. To compare two checkouts, run it
from each (`--root`: the checkout whose code the server runs).

    .venv/bin/python bench/load_cost.py --leads 4000
"""

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

import httpx


async def run(args: argparse.Namespace) -> dict:
    from bench import scale
    from bench.hot_to_webhook import bench_site, free_port
    from bench.idle import backends_cpu, database_stats
    from bench.ingest import asyncpg_dsn, cpu_seconds, prepare_database, start_server

    await prepare_database(args.database_url)
    write_key, _ = (await bench_site(args.database_url)).split("\n")
    dsn = asyncpg_dsn(args.database_url)
    port = free_port()
    server = await asyncio.to_thread(start_server, args.database_url, port, 2, True)
    grow = argparse.Namespace(clients=4, batch_events=300, events_per_lead=9.0, seed=1)
    try:
        await asyncio.sleep(5)  # the start's own work
        xacts0, scans0, pids = await database_stats(dsn)
        cpu0, backends0 = cpu_seconds(server.pid), backends_cpu(pids)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as c:
            load = await scale.grow(c, write_key, 0, args.leads, grow)
        cpu1, backends1 = cpu_seconds(server.pid), backends_cpu(pids)
        xacts1, scans1, _ = await database_stats(dsn)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "load": load,
        "server_cpu_seconds": round(cpu1["server"] - cpu0["server"], 1),
        "postgres_backends_cpu_seconds": round(backends1 - backends0, 1),
        "transactions": xacts1 - xacts0,
        "scans": {
            t: n - scans0.get(t, 0) for t, n in sorted(scans1.items()) if n - scans0.get(t, 0) > 50
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/leadheat_bench_load"
    )
    parser.add_argument("--leads", type=int, default=4000)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    sys.path.insert(0, str(args.root))
    os.chdir(args.root)  # the server is started from here (bench.ingest.start_server's cwd)
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
