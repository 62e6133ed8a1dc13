"""Where a group's time goes, without HTTP: Python CPU and PostgreSQL CPU per event.

Builds groups like bench/ingest.py's batch mode (batches of 100 events over ~10 visitors out
of 10,000), validates them as the API does, then stores them one group at a time through the
ingestion pipeline's own code on a fresh PostgreSQL database, serially (no contention). It
reads this process's CPU time and the PostgreSQL backend's (from /proc), so the two sides of
the cost can be told apart and changed one at a time.

    .venv/bin/python bench/store.py                       # 200 groups of 1,000 events
    .venv/bin/python bench/store.py --groups 100 --group-size 64 --batch 1   # single-event mode
    # audience upkeep: the membership consumer and due times, with 0 or 5 audiences
    .venv/bin/python bench/store.py --groups 300 --group-size 64 --batch 1 --audiences 5
"""

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from app.audiences.membership import DueTimes, Memberships  # noqa: E402
from app.config import Settings, WebhookSettings  # noqa: E402
from app.db import make_engine, utcnow  # noqa: E402
from app.domain.changes import AfterGroup, Scorer  # noqa: E402
from app.domain.events import IngestEvent  # noqa: E402
from app.ingestion.bulk import group_transaction, prepare_flusher  # noqa: E402
from app.ingestion.parsing import validate_event  # noqa: E402
from app.ingestion.store import Submission, store_group  # noqa: E402
from app.scoring.scorer import LeadScorer, RuleSetCache  # noqa: E402
from bench.ingest import prepare_database  # noqa: E402
from bench.procstat import process_cpu  # noqa: E402

UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)


def _raw_event(visitor: int, n: int, run: str) -> dict[str, object]:
    return {
        "type": "track",
        "event": "Product Viewed",
        "anonymousId": f"v{visitor}",
        "messageId": f"{run}-{n}",
        "properties": {"product_id": f"p{n % 500}", "category": "fridges", "price": 499},
        "context": {"userAgent": UA, "page": {"url": f"https://shop.example/fridges/p{n % 500}"}},
    }


async def main(args: argparse.Namespace) -> None:
    url = args.database_url
    await prepare_database(url, args.audiences if args.audiences is not None else 0)
    settings = Settings(database_url=url)
    engine = make_engine(settings)
    site_id = None
    async with engine.connect() as conn:
        site_id = (await conn.execute(text("SELECT id FROM sites"))).scalar_one()
        backend = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    scorer: Scorer | None = None
    rule_sets = RuleSetCache(ttl_seconds=60)
    if not args.no_scoring:
        scorer = LeadScorer(rule_sets, timedelta(minutes=30))
    after_group: list[AfterGroup] = []
    if args.audiences is not None:  # audience upkeep as the server runs it
        after_group.append(Memberships(WebhookSettings(), rule_sets))
        if scorer is not None:
            scorer = DueTimes(scorer)
    rng = random.Random(7)
    run = uuid.uuid4().hex[:8]
    counter = 0
    groups: list[list[Submission]] = []
    for _ in range(args.groups):
        subs = []
        for _ in range(args.group_size // args.batch):
            first = rng.randint(1, args.visitors)
            events: list[IngestEvent] = []
            now = utcnow()
            for i in range(args.batch):
                counter += 1
                visitor = (first + (i % 10)) % args.visitors + 1 if args.batch > 1 else first
                event = validate_event(
                    _raw_event(visitor, counter, run),
                    index=i,
                    forced_type=None,
                    batch_sent_at=None,
                    received_at=now,
                    max_event_bytes=32 * 1024,
                )
                assert isinstance(event, IngestEvent)
                events.append(event)
            subs.append(Submission(site_id, events))
        groups.append(subs)

    visit_timeout = timedelta(minutes=30)
    wall: list[float] = []
    py0 = time.process_time()
    pg0 = process_cpu(backend)[2]
    start = time.perf_counter()
    # One pooled connection (pool_size 1 is not guaranteed): keep a connection and reuse it.
    async with engine.connect() as conn:
        if (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() != backend:
            raise SystemExit("expected the same backend")
        await conn.commit()
        await prepare_flusher(conn)  # as the ingestion pipeline's flushers do
        for subs in groups:
            t = time.perf_counter()
            async with group_transaction(conn):
                await store_group(
                    conn,
                    subs,
                    visit_timeout=visit_timeout,
                    store_bots=True,
                    scorer=scorer,
                    after_group=after_group,
                )
            wall.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - start
    py = time.process_time() - py0
    pg = process_cpu(backend)[2] - pg0
    await engine.dispose()
    n = args.groups * args.group_size
    print(
        f"{n} events in {args.groups} groups of {args.group_size} "
        f"({args.batch} per request), scoring {'off' if args.no_scoring else 'on'}, "
        f"audiences {'(no upkeep)' if args.audiences is None else args.audiences}"
    )
    print(f"wall      {elapsed:7.2f} s   {elapsed / n * 1e6:6.1f} us/event")
    print(f"python    {py:7.2f} s   {py / n * 1e6:6.1f} us/event")
    print(f"postgres  {pg:7.2f} s   {pg / n * 1e6:6.1f} us/event")
    print(f"group p50 {statistics.median(wall) * 1000:7.2f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/leadheat_bench"
    )
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--group-size", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--visitors", type=int, default=10_000)
    parser.add_argument("--no-scoring", action="store_true")
    parser.add_argument(
        "--audiences",
        type=int,
        choices=range(6),
        help="keep audience membership with this many audiences (default: no upkeep at all)",
    )
    asyncio.run(main(parser.parse_args()))
