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
from bench.hot_to_webhook import free_port, run_probes  # noqa: E402
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
            figures = await run_probes(client, write_key, args, fake.arrived)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        server.close()
    return figures


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
