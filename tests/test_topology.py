"""docker-compose.yml's topology as processes on PostgreSQL: two `leadheat serve` (no background
work) on two ports and one `leadheat worker`. Traffic goes to both replicas at once, every
batch also retried on the other one: every event is stored once, and every lead that turns hot
is alerted once (one `lead.hot`, delivered by the worker, received once)."""

import asyncio
import json
import os
import random
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from app.config import Settings
from app.db import make_engine
from tests.conftest import new_database
from tests.factories import basic_auth, bearer
from tests.helpers import free_port, wait_until

LEADS = 30
HOT_EVERY = 3  # every third lead asks to be contacted: a hard rule makes it hot at once


class Received:
    def __init__(self) -> None:
        self.url = ""
        self.lock = threading.Lock()
        self.webhook_ids: Counter[str] = Counter()
        self.hot_leads: Counter[str] = Counter()


@contextmanager
def receiving() -> Iterator[Received]:
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            with received.lock:
                received.webhook_ids[self.headers["webhook-id"]] += 1
                if body["type"] == "lead.hot":
                    received.hot_leads[body["data"]["lead_id"]] += 1
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    received.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


def _leadheat(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _batches(lead: int) -> list[list[dict[str, Any]]]:
    """A lead's events in two batches, to go to the two replicas."""
    visitor = f"visitor-{lead}"

    def event(n: int, name: str, **properties: Any) -> dict[str, Any]:
        return {
            "type": "track",
            "event": name,
            "anonymousId": visitor,
            "messageId": f"{visitor}-{n}",
            "properties": properties,
        }

    first = [
        event(1, "Product Viewed", category="fridges", price=499),
        event(2, "Product Viewed", category="ovens", price=299),
    ]
    second = [event(3, "Product Added", category="fridges", price=499)]
    if lead % HOT_EVERY == 0:
        second.append(event(4, "Contact Requested", phone=f"+7 900 000-00-{lead:02d}"))
    return [first, second]


def _stored(url: str, site_id: str) -> tuple[int, int, list[str]]:
    """Events stored (rows, distinct messageIds) and each lead.hot delivery's status."""

    async def read() -> tuple[int, int, list[str]]:
        engine = make_engine(Settings(database_url=url))
        try:
            async with engine.connect() as conn:
                rows, distinct = (
                    await conn.execute(
                        text(
                            "SELECT count(*), count(DISTINCT message_id) FROM events"
                            " WHERE site_id = :site"
                        ),
                        {"site": site_id},
                    )
                ).one()
                statuses = (
                    await conn.scalars(
                        text(
                            "SELECT d.status FROM webhook_deliveries d JOIN webhook_messages m"
                            " ON m.id = d.message_id WHERE m.event_type = 'lead.hot'"
                        )
                    )
                ).all()
        finally:
            await engine.dispose()
        return rows, distinct, list(statuses)

    return asyncio.run(read())


def test_two_replicas_and_a_worker_store_every_event_once_and_alert_every_hot_lead_once(
    tmp_path: Path,
) -> None:
    with new_database("postgresql", tmp_path) as url, receiving() as received:
        env = {
            **os.environ,
            "LEADHEAT_DATABASE_URL": url,
            "LEADHEAT_RUN_BACKGROUND": "false",
            "LEADHEAT_AUTO_MIGRATE": "false",
            "LEADHEAT_CREATE_DEMO_SITE": "false",
            "LEADHEAT_WEBHOOKS__ALLOW_PRIVATE_NETWORKS": "true",
        }
        _leadheat("migrate", env=env)
        keys = dict(
            line.split(":", 1)
            for line in _leadheat("sites", "create", "--name", "Two replicas", env=env).splitlines()
        )
        site_id = keys["Site"].rsplit("(", 1)[1].rstrip(")")
        write_key, secret_key = keys["Write key"].split()[0], keys["Secret key"].split()[0]

        ports = [free_port(), free_port()]
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "app.cli", *command],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for command in (
                ["serve", "--port", str(ports[0])],
                ["serve", "--port", str(ports[1])],
                ["worker"],
            )
        ]
        try:
            replicas = [f"http://127.0.0.1:{port}" for port in ports]

            def both_ready() -> bool:
                """both replicas answer /health"""
                assert all(p.poll() is None for p in processes), "a process exited"
                try:
                    return all(httpx.get(f"{r}/health").status_code == 200 for r in replicas)
                except httpx.TransportError:
                    return False

            wait_until(both_ready, timeout=60)
            endpoint = httpx.post(
                f"{replicas[0]}/v1/webhooks",
                headers=bearer(secret_key),
                json={"url": received.url, "event_types": ["lead.hot"]},
            )
            assert endpoint.status_code == 201, endpoint.text

            # Each batch to one replica and, as a client's retry, to the other; all at once.
            sends = [
                (replicas[(half + retry) % 2], batch)
                for lead in range(LEADS)
                for half, batch in enumerate(_batches(lead))
                for retry in (0, 1)
            ]
            random.Random(14).shuffle(sends)

            def send(replica_and_batch: tuple[str, list[dict[str, Any]]]) -> dict[str, Any]:
                replica, batch = replica_and_batch
                r = httpx.post(
                    f"{replica}/v1/batch",
                    auth=basic_auth(write_key),
                    json={"batch": batch},
                    timeout=30,
                )
                assert r.status_code == 200, r.text
                answer: dict[str, Any] = r.json()
                return answer

            with ThreadPoolExecutor(max_workers=8) as pool:
                answers = list(pool.map(send, sends))
            unique_events = sum(len(batch) for lead in range(LEADS) for batch in _batches(lead))
            assert sum(a["accepted"] for a in answers) == unique_events
            assert sum(a["duplicates"] for a in answers) == unique_events
            assert sum(a["rejected"] for a in answers) == 0

            hot = len([lead for lead in range(LEADS) if lead % HOT_EVERY == 0])

            def all_delivered() -> list[str] | None:
                """the worker delivered a lead.hot for every hot lead"""
                statuses = _stored(url, site_id)[2]
                done = len(statuses) >= hot and set(statuses) == {"succeeded"}
                return statuses if done else None

            statuses = wait_until(all_delivered, timeout=60)
            assert statuses == ["succeeded"] * hot  # one lead.hot message a hot lead
            rows, distinct, _ = _stored(url, site_id)
            assert rows == distinct == unique_events  # every event stored once
            assert len(received.hot_leads) == hot
            assert set(received.hot_leads.values()) == {1}  # alerted once
            assert set(received.webhook_ids.values()) == {1}  # every message received once
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=30)
