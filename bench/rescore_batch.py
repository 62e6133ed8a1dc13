"""Where a re-scoring batch's time goes, per lead: reading the stale leads (locked), reading
their histories, the replay, and writing the scores, each timed apart over `--batches`
batches of the database `bench/rescore_job.py` loaded. Every batch is rolled back, so the
database is left as it was; the latest rule-set version is replayed.

    .venv/bin/python bench/rescore_batch.py
    .venv/bin/python bench/rescore_batch.py --batches 50 --batch-leads 500
"""

import argparse
import asyncio
import sys
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.db import make_engine, utcnow  # noqa: E402
from app.domain import lead_writes  # noqa: E402
from app.domain.lead_rows import lead_row  # noqa: E402
from app.scoring import engine  # noqa: E402
from app.scoring.histories import scoring_histories  # noqa: E402
from app.scoring.models import RuleSetVersion  # noqa: E402
from app.scoring.rescoring import stale_batch_query  # noqa: E402
from app.scoring.scorer import replay_events, rule_set_for_version  # noqa: E402
from bench.ingest import cpu_reference_us  # noqa: E402
from bench.rescore_job import DATABASE_URL  # noqa: E402


async def run(url: str, batches: int, batch_leads: int) -> None:
    engine_ = make_engine(Settings(database_url=url))
    async with engine_.connect() as conn:
        version = (
            await conn.execute(
                select(RuleSetVersion).order_by(RuleSetVersion.version.desc()).limit(1)
            )
        ).one()
    compiled = engine.compile_rule_set(rule_set_for_version(version.definition, version.version))
    spent = dict.fromkeys(("read", "histories", "replay", "write"), 0.0)
    leads, after = 0, None
    for _ in range(batches):
        async with engine_.begin() as conn:
            t0 = time.perf_counter()
            # Any version but one the leads cannot have: every lead counts as stale.
            query = stale_batch_query(version.site_id, -1, after, None, batch_leads)
            profiles = [lead_row(r) for r in (await conn.execute(query)).mappings()]
            t1 = time.perf_counter()
            ids = [p["id"] for p in profiles]
            history = await scoring_histories(conn, version.site_id, ids, timedelta(minutes=30))
            t2 = time.perf_counter()
            now = utcnow()
            for profile in profiles:
                replay_events(profile, compiled, history.get(profile["id"], []), now)
            t3 = time.perf_counter()
            await lead_writes.write_scores(conn, profiles)
            t4 = time.perf_counter()
            await conn.rollback()
        if not profiles:
            break
        for name, seconds in zip(spent, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            spent[name] += seconds
        leads += len(profiles)
        after = profiles[-1]["id"]
    await engine_.dispose()
    per_lead = {name: round(seconds / max(1, leads) * 1e6) for name, seconds in spent.items()}
    print({"leads": leads, "us_per_lead": per_lead, "cpu_reference_us": cpu_reference_us()})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=DATABASE_URL)
    parser.add_argument("--batches", type=int, default=25)
    parser.add_argument("--batch-leads", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.database_url, args.batches, args.batch_leads))


if __name__ == "__main__":
    main()
