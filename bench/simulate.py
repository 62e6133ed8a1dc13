"""The shop simulator (tests/simulation) scaled up, against `leadheat serve` on PostgreSQL.

Creates a fresh database and starts the server as bench/ingest.py does, registers a webhook
endpoint on a local receiver, sends thousands of visitors' sessions from concurrent clients
(single calls and mixed batches, merges, crawlers, retries), then prints events/s, the answers'
status counts and every invariant's result (tests/simulation/invariants.py).

    .venv/bin/python bench/simulate.py --visitors 3000 --lanes 16
    .venv/bin/python bench/simulate.py --visitors 20000 --duration 60   # stop sending at 60 s

The temperature refresher is off (its interval set to a day): it re-evaluates leads at the
wall clock, and the invariants compare each lead with the score its last event gave.
"""

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import Settings, WebhookSettings  # noqa: E402
from app.crypto import secret_box  # noqa: E402
from app.db import make_engine, make_sessionmaker  # noqa: E402
from app.sites.models import Site  # noqa: E402
from app.webhooks import service as webhooks_service  # noqa: E402
from app.webhooks.schemas import WebhookEndpointCreate  # noqa: E402
from bench.ingest import prepare_database, start_server  # noqa: E402
from tests.simulation.deliveries import undelivered  # noqa: E402
from tests.simulation.driver import send_plan  # noqa: E402
from tests.simulation.invariants import check  # noqa: E402
from tests.simulation.plan import make_plan  # noqa: E402
from tests.simulation.receiver import Receiver, receiving  # noqa: E402

SERVER_ENV = {
    "LEADHEAT_WEBHOOKS__ALLOW_PRIVATE_NETWORKS": "true",  # the receiver is on 127.0.0.1
    "LEADHEAT_SCORING__REFRESH_INTERVAL_SECONDS": "86400",
}


async def register_endpoint(settings: Settings, write_key: str, url: str) -> Site:
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            site = (await session.scalars(select(Site).where(Site.write_key == write_key))).one()
            body = WebhookEndpointCreate(url=url)
            box = secret_box(settings)
            await webhooks_service.create(session, site.id, body, settings.webhooks, box)
            await session.commit()
            return site
    finally:
        await engine.dispose()


async def simulate(args: argparse.Namespace, settings: Settings, receiver: Receiver) -> dict:
    write_key = await prepare_database(args.database_url)
    site = await register_endpoint(settings, write_key, receiver.url)
    plan = make_plan(args.seed, args.visitors, args.lanes, datetime.now(UTC), args.days)
    os.environ.update(SERVER_ENV)
    server = await asyncio.to_thread(start_server, args.database_url, args.port, args.workers, True)
    try:
        url = f"http://127.0.0.1:{args.port}"
        outcome = await send_plan(url, write_key, plan, duration=args.duration)
        started = time.monotonic()
        engine = make_engine(settings)
        try:
            report = await check(engine, site.id, plan, outcome, settings)
            report.violations["webhooks_delivered"] = await undelivered(engine, site.id, receiver)
        finally:
            await engine.dispose()
    finally:
        server.terminate()
        server.wait(timeout=30)
    acknowledged = sum(len(a.request.message_ids) for a in outcome.acknowledged())
    return {
        "visitors": args.visitors,
        "lanes": args.lanes,
        "workers": args.workers,
        "requests": len(outcome.answers),
        "events_sent": outcome.events_sent,
        "events_planned": len(plan.events) + plan.resent,
        "seconds": round(outcome.seconds, 1),
        "events_per_s": round(acknowledged / outcome.seconds) if outcome.seconds else 0,
        "statuses": dict(outcome.statuses),
        "transport_errors": len(outcome.errors),
        "check_seconds": round(time.monotonic() - started, 1),
        **report.stats,
        "invariants": report.summary(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/leadheat_simulate"
    )
    parser.add_argument("--visitors", type=int, default=3000)
    parser.add_argument("--lanes", type=int, default=16, help="concurrent clients")
    parser.add_argument("--duration", type=float, help="stop sending after this many seconds")
    parser.add_argument("--days", type=float, default=3.0, help="simulated days of traffic")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    args = parser.parse_args()
    if not args.port:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            args.port = sock.getsockname()[1]
    settings = Settings(
        database_url=args.database_url, webhooks=WebhookSettings(allow_private_networks=True)
    )
    with receiving() as receiver:
        result = asyncio.run(simulate(args, settings, receiver))
    print(json.dumps(result, indent=2))
    if any(v != "ok" for v in result["invariants"].values()):
        raise SystemExit("some invariants did not hold")


if __name__ == "__main__":
    main()
