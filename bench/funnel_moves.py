"""The funnel's temperature moves at a large site's volume: how long `GET /v1/stats/funnel`'s
moves query takes over `temperature_moves` rows of a month.

Fills a fresh PostgreSQL database with `--rows` rows for one site over 30 days (one row per
kind of move and transaction, as ingestion and the refresher append them) and as many for
other sites, times the query of the default period (30 days) over them, then compacts them
(the loop `leads.temperature_moves`: one row per site, hour and kind) and times it again.

    .venv/bin/python bench/funnel_moves.py --rows 100000
"""

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db import make_engine, make_sessionmaker, utcnow  # noqa: E402
from app.leads import moves, stats  # noqa: E402
from bench.ingest import asyncpg_dsn, prepare_database  # noqa: E402

MOVES = [("cold", "warm"), ("warm", "hot"), ("hot", "warm"), ("warm", "cold"), ("hot", "cold")]


async def main(args: argparse.Namespace) -> None:
    url = args.database_url
    await prepare_database(url, 0)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    site = await conn.fetchval("SELECT id FROM sites")
    now = utcnow()
    rows = []
    for i in range(args.rows * 2):
        owner = site if i % 2 == 0 else uuid.uuid4()
        a, b = MOVES[i % len(MOVES)]
        at = now - timedelta(days=30) * ((i // 2) / args.rows)
        rows.append((owner, at, a, b, 1 + i % 3, False))
    await conn.copy_records_to_table(
        "temperature_moves",
        records=rows,
        columns=["site_id", "at", "from_temperature", "to_temperature", "leads", "compacted"],
    )
    await conn.execute("ANALYZE temperature_moves")
    engine = make_engine(Settings(database_url=url))
    for label in ("raw", "compacted"):
        if label == "compacted":
            await moves.compact(engine, now)
            await conn.execute("ANALYZE temperature_moves")
        left = await conn.fetchval(
            "SELECT count(*) FROM temperature_moves WHERE site_id = $1", site
        )
        times = []
        async with make_sessionmaker(engine)() as session:
            for _ in range(args.repeat):
                t = time.perf_counter()
                await stats.moves(session, site, now - timedelta(days=30), now)
                times.append((time.perf_counter() - t) * 1000)
                await session.commit()
        times.sort()
        print(
            f"{label}: {left:,} rows of the site's moves in 30 days: moves query median "
            f"{statistics.median(times):.1f} ms, p95 {times[int(len(times) * 0.95)]:.1f} ms"
        )
    await conn.close()
    await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/leadheat_bench"
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=40)
    asyncio.run(main(parser.parse_args()))
