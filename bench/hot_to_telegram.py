"""Speed to Telegram: from the HTTP request whose event makes a lead hot to the alert's
sendMessage reaching the Bot API (a local fake), under background ingestion load.

Starts a real `leadheat serve` on a fresh PostgreSQL database (as bench/ingest.py does) with
LEADHEAT_TELEGRAM_API_BASE pointing at a fake Bot API in this process; the site has one
manager on duty, whose Telegram chat is linked, so every hot lead is assigned to them and
alerted there. While page views stream in at `--rate` events/s, a `Contact Requested` of a
fresh visitor is sent every `--interval` seconds and timed until its alert arrives.

    .venv/bin/python bench/hot_to_telegram.py
    .venv/bin/python bench/hot_to_telegram.py --rate 500 --probes 200 --workers 2
"""

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import onboarding  # noqa: E402
from app.channels.models import TelegramBot  # noqa: E402
from app.config import Settings  # noqa: E402
from app.crypto import secret_box  # noqa: E402
from app.db import make_engine, make_sessionmaker, utcnow  # noqa: E402
from app.team import service as team_service  # noqa: E402
from app.team.schemas import WEEKDAYS, UserCreate  # noqa: E402
from app.webhooks.models import WebhookEndpoint  # noqa: E402
from bench.hot_to_webhook import background_load, free_port  # noqa: E402
from bench.ingest import prepare_database, start_server  # noqa: E402

TOKEN = "4242:bench-token"
PROBE = re.compile(rb"probe\d+@bench\.example")


class FakeBotApi:
    """A minimal HTTP/1.1 server (keep-alive) answering the Bot API's shapes, noting when
    each probe's alert (sendMessage naming the probe) arrives."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.other = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                at = time.perf_counter()
                found = PROBE.search(body)
                if b"/sendMessage " in head.split(b"\r\n", 1)[0] and found:
                    self.arrived.setdefault(found.group().decode(), at)
                else:
                    self.other += 1
                answer = b'{"ok":true,"result":{"message_id":1,"date":0,"chat":{"id":1}}}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                    + str(len(answer)).encode()
                    + b"\r\n\r\n"
                    + answer
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


async def bench_site(url: str) -> str:
    """A site with a bot and one manager, always on duty, whose chat is linked."""
    settings = Settings(database_url=url)
    box = secret_box(settings)
    engine = make_engine(settings)
    async with make_sessionmaker(engine)() as session:
        created = await onboarding.create_site(session, "Bench shop (Telegram)")
        hours = {day: {"start": "00:00", "end": "23:59"} for day in WEEKDAYS}
        user = await team_service.create_user(
            session,
            created.site.id,
            UserCreate(
                email="manager@bench.example", password="bench password 1", role="manager",
                name="Bench", working_hours=hours,  # type: ignore[arg-type]
            ),
        )  # fmt: skip
        now = utcnow()
        session.add(
            TelegramBot(
                site_id=created.site.id, token_encrypted=box.encrypt(TOKEN), username="bench_bot",
                mode="webhook", update_offset=0, created_at=now, updated_at=now,
            )
        )  # fmt: skip
        session.add(
            WebhookEndpoint(
                site_id=created.site.id, user_id=user.id, kind="telegram", url="tg:1",
                event_types=[], secret_encrypted=box.encrypt(""), created_at=now, updated_at=now,
            )
        )  # fmt: skip
        await session.commit()
    await engine.dispose()
    return created.write_key


async def run(args: argparse.Namespace) -> dict[str, float]:
    # The server decrypts the bot's token with the key the bench encrypted it with.
    os.environ.setdefault("LEADHEAT_SECRETS_KEY", Fernet.generate_key().decode())
    await prepare_database(args.database_url)
    write_key = await bench_site(args.database_url)
    fake = FakeBotApi()
    api_port = free_port()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", api_port)
    os.environ["LEADHEAT_TELEGRAM_API_BASE"] = f"http://127.0.0.1:{api_port}"
    port = args.port or free_port()
    proc = await asyncio.to_thread(start_server, args.database_url, port, args.workers, True)
    base = f"http://127.0.0.1:{port}"
    try:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
            stop = asyncio.Event()
            load = asyncio.create_task(background_load(client, write_key, args.rate, stop))
            await asyncio.sleep(2)  # let the load settle
            started: dict[str, float] = {}
            answered: dict[str, float] = {}

            async def probe(n: int) -> None:
                email = f"probe{n}@bench.example"
                body = {
                    "type": "track", "event": "Contact Requested", "anonymousId": f"probe-{n}",
                    "properties": {"email": email},
                }  # fmt: skip
                started[email] = time.perf_counter()
                (await client.post("/v1/track", auth=(write_key, ""), json=body)).raise_for_status()
                answered[email] = time.perf_counter()

            probes = []
            t_load = time.perf_counter()
            for n in range(args.probes):
                probes.append(asyncio.create_task(probe(n)))
                await asyncio.sleep(args.interval)
            await asyncio.gather(*probes)
            deadline = time.perf_counter() + 10
            while len(fake.arrived) < args.probes and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
            stop.set()
            background_events = await load
            load_seconds = time.perf_counter() - t_load + 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        server.close()
    latencies = sorted(
        (fake.arrived[e] - t0) * 1000 for e, t0 in started.items() if e in fake.arrived
    )
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    # From the ingestion request's answer (committed) to the alert: the outbox's part.
    after = sorted((fake.arrived[e] - answered[e]) * 1000 for e in answered if e in fake.arrived)
    return {
        "probes": args.probes,
        "delivered": len(latencies),
        "background_events_per_s": round(background_events / load_seconds),
        "workers": args.workers,
        "p50_ms": round(statistics.median(latencies), 1),
        "p90_ms": round(q[89], 1),
        "p99_ms": round(q[98], 1),
        "max_ms": round(latencies[-1], 1),
        "after_answer_p50_ms": round(statistics.median(after), 1),
        "after_answer_p99_ms": round(statistics.quantiles(after, n=100, method="inclusive")[98], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/leadheat_bench_tg"
    )
    parser.add_argument("--rate", type=int, default=500, help="background events/s")
    parser.add_argument("--probes", type=int, default=200, help="leads made hot")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between probes")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result))
    if result["delivered"] < result["probes"]:
        raise SystemExit("SOME HOT LEADS NEVER REACHED THE FAKE BOT API")


if __name__ == "__main__":
    main()
