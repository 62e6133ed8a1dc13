"""Speed to webhook: from the HTTP request whose event makes a lead hot to the first delivery
attempt reaching the shop's receiver, under background ingestion load.

Starts a real `leadheat serve` on a fresh PostgreSQL database (as bench/ingest.py does), a
local receiver (a small asyncio HTTP server in this process), adds a `lead.hot` webhook
endpoint, then, while page views stream in at `--rate` events/s, sends `Contact Requested`
for a fresh visitor every `--interval` seconds and times each until its `lead.hot` arrives.

    .venv/bin/python bench/hot_to_webhook.py
    .venv/bin/python bench/hot_to_webhook.py --rate 500 --probes 300 --workers 2
"""

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import onboarding  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import make_engine, make_sessionmaker  # noqa: E402
from bench.ingest import prepare_database, start_server  # noqa: E402


class Receiver:
    """A minimal HTTP/1.1 server (keep-alive) noting when each probe's lead.hot arrives."""

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
                payload = json.loads(body)
                email = (payload.get("data", {}).get("contacts") or {}).get("email", "")
                if payload.get("type") == "lead.hot" and email.startswith("probe"):
                    self.arrived.setdefault(email, at)
                else:
                    self.other += 1
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the server closed the connection, or the bench is shutting down
        finally:
            writer.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def bench_site(url: str) -> str:
    """A site whose secret key we know (prepare_database's prints only its write key)."""
    engine = make_engine(Settings(database_url=url))
    async with make_sessionmaker(engine)() as session:
        created = await onboarding.create_site(session, "Bench shop (webhooks)")
        await session.commit()
    await engine.dispose()
    return f"{created.write_key}\n{created.secret_key}"


async def background_load(
    client: httpx.AsyncClient, write_key: str, rate: int, stop: asyncio.Event
) -> int:
    """Page views of random visitors at about `rate` events/s, in batches of 10."""
    sent, batch, tick = 0, 10, 10 / rate
    next_at = time.perf_counter()
    pending: set[asyncio.Task[httpx.Response]] = set()
    while not stop.is_set():
        events = [
            {"type": "page", "anonymousId": f"bg{random.randrange(20_000)}",
             "context": {"page": {"url": "https://shop.example/fridges"}}}
            for _ in range(batch)
        ]  # fmt: skip
        task = asyncio.create_task(
            client.post("/v1/batch", auth=(write_key, ""), json={"batch": events})
        )
        pending.add(task)
        task.add_done_callback(pending.discard)
        sent += batch
        next_at += tick
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    await asyncio.gather(*pending, return_exceptions=True)
    return sent


async def run_probes(
    client: httpx.AsyncClient,
    write_key: str,
    args: argparse.Namespace,
    arrived: dict[str, float],
) -> dict[str, float]:
    """Under `args.rate` background events/s, a fresh visitor's `Contact Requested` every
    `args.interval` s, `args.probes` times; waits up to 10 s for each probe's alert to land in
    `arrived` (its email -> `time.perf_counter()` at arrival) and answers the figures."""
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
    while len(arrived) < args.probes and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    stop.set()
    background_events = await load
    load_seconds = time.perf_counter() - t_load + 2

    def p99(values: list[float]) -> float:
        return round(statistics.quantiles(values, n=100, method="inclusive")[98], 1)

    latencies = sorted((arrived[e] - t0) * 1000 for e, t0 in started.items() if e in arrived)
    # From the ingestion request's answer (committed) to the alert: the outbox's part.
    after_ack = sorted((arrived[e] - answered[e]) * 1000 for e in answered if e in arrived)
    acks = sorted((answered[e] - t0) * 1000 for e, t0 in started.items() if e in answered)
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "probes": args.probes,
        "delivered": len(latencies),
        "background_events_per_s": round(background_events / load_seconds),
        "workers": args.workers,
        "p50_ms": round(statistics.median(latencies), 1),
        "p90_ms": round(q[89], 1),
        "p99_ms": round(q[98], 1),
        "max_ms": round(latencies[-1], 1),
        "after_answer_p50_ms": round(statistics.median(after_ack), 1),
        "after_answer_p99_ms": p99(after_ack),
        "request_p50_ms": round(statistics.median(acks), 1),
        "request_p99_ms": p99(acks),
    }


async def run(args: argparse.Namespace) -> dict[str, float]:
    await prepare_database(args.database_url)
    write_key, secret_key = (await bench_site(args.database_url)).split("\n")
    receiver = Receiver()
    hook_port = free_port()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", hook_port)
    port = args.port or free_port()
    os.environ["LEADHEAT_WEBHOOKS__ALLOW_PRIVATE_NETWORKS"] = "true"  # the receiver is local
    proc = await asyncio.to_thread(start_server, args.database_url, port, args.workers, True)
    base = f"http://127.0.0.1:{port}"
    try:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
            r = await client.post(
                "/v1/webhooks",
                headers={"authorization": f"Bearer {secret_key}"},
                json={"url": f"http://127.0.0.1:{hook_port}/hooks", "event_types": ["lead.hot"]},
            )
            r.raise_for_status()
            figures = await run_probes(client, write_key, args, receiver.arrived)
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
        "--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/leadheat_bench"
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
        raise SystemExit("SOME HOT LEADS NEVER REACHED THE RECEIVER")


if __name__ == "__main__":
    main()
