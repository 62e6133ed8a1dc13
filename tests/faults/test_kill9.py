"""kill -9 of `leadheat serve` under ingestion load: every acknowledged event is stored exactly
once, every lead that turned hot has its `lead.hot` outbox message (committed with the
events), and a restarted server delivers the outbox, including what the dead one had in
flight."""

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.domain.tables import Event, Lead, LeadIdentity
from app.webhooks.models import WebhookDelivery, WebhookMessage
from tests.factories import create_site
from tests.helpers import eventually, free_port

KILL_AFTER_ACKED = 80  # events acknowledged before the kill (the load goes on meanwhile)


class HeldReceiver:
    """A webhook receiver that holds every request until `release` (then drops it unanswered:
    its sender is dead by then), and afterwards answers 200 and records the `webhook-id`."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.held = 0
        self.delivered: Counter[str] = Counter()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                self.rfile.read(int(self.headers.get("content-length", 0)))
                if not receiver.release.is_set():
                    with receiver.lock:
                        receiver.held += 1
                    receiver.release.wait(30)
                    self.close_connection = True
                    return
                with receiver.lock:
                    receiver.delivered[self.headers["webhook-id"]] += 1
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def held_receiver() -> Iterator[HeldReceiver]:
    receiver = HeldReceiver()
    yield receiver
    receiver.close()


class Server:
    """`leadheat serve --no-migrate` in its own process group."""

    def __init__(self, database_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "LEADHEAT_DATABASE_URL": database_url,
            "LEADHEAT_CREATE_DEMO_SITE": "false",
            "LEADHEAT_LOG_LEVEL": "warning",
            "LEADHEAT_WEBHOOKS__ALLOW_PRIVATE_NETWORKS": "true",
            "LEADHEAT_WEBHOOKS__LEASE_SECONDS": "2",  # the dead server's claims come back soon
            "LEADHEAT_WEBHOOKS__POLL_SECONDS": "0.2",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--no-migrate", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    async def wait_serving(self, timeout: float = 30) -> None:
        async with httpx.AsyncClient(timeout=2) as http:

            async def healthy() -> bool:
                """the server answers /health"""
                assert self.proc.poll() is None, "serve exited"
                try:
                    return (await http.get(f"{self.url}/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(healthy, timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


class Load:
    """Ingestion traffic that records what the server acknowledged (a 2xx)."""

    def __init__(self, url: str, write_key: str) -> None:
        self.url = url
        self.auth = (write_key, "")
        self.acked: list[str] = []
        self.hot_visitors: list[str] = []
        self.numbers = itertools.count()

    def _event(self, hot: bool) -> dict[str, Any]:
        n = next(self.numbers)
        visitor = f"v{n}"
        event: dict[str, Any] = {"messageId": str(uuid.uuid4()), "anonymousId": visitor}
        if hot:
            return {**event, "type": "track", "event": "Contact Requested",
                    "properties": {"phone": f"+7 900 {n:07d}"}}  # fmt: skip
        return {**event, "type": "page", "properties": {"url": "https://shop.example/fridges"}}

    async def _post(self, http: httpx.AsyncClient, path: str, body: dict, events: list) -> None:
        r = await http.post(f"{self.url}{path}", auth=self.auth, json=body)
        if r.status_code // 100 == 2:
            answer = r.json()
            assert answer["rejected"] == 0, answer
            self.acked += [e["messageId"] for e in events]
            self.hot_visitors += [e["anonymousId"] for e in events if e["type"] == "track"]

    async def run(self, task: int, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            while not stop.is_set():
                try:
                    if task % 2:  # a batch: every fifth visitor asks to be contacted
                        events = [self._event(hot=i % 5 == 0) for i in range(20)]
                        await self._post(http, "/v1/batch", {"batch": events}, events)
                    else:
                        [event] = events = [self._event(hot=task == 0)]
                        path = "/v1/track" if event["type"] == "track" else "/v1/page"
                        await self._post(http, path, event, events)
                except httpx.TransportError:
                    # The server is gone: a client's pause before it retries (until `stop`).
                    await asyncio.sleep(0.05)


async def _leads_of(session, site_id: uuid.UUID, visitors: list[str]) -> set[uuid.UUID]:
    """The leads of these anonymous visitors, each of them hot."""
    rows = await session.execute(
        select(LeadIdentity.value, Lead.id, Lead.temperature)
        .join(Lead, Lead.id == LeadIdentity.lead_id)
        .where(LeadIdentity.site_id == site_id, LeadIdentity.kind == "anonymous")
    )
    leads = {visitor: (lead_id, temperature) for visitor, lead_id, temperature in rows}
    assert [leads[v][1] for v in visitors] == ["hot"] * len(visitors)
    return {leads[v][0] for v in visitors}


async def test_kill_9_under_load_loses_no_acknowledged_event_nor_outbox_message(
    database_url, db_engine, session, held_receiver
):
    site = await create_site(session)
    first = Server(database_url)
    second: Server | None = None
    try:
        await first.wait_serving()
        async with httpx.AsyncClient(base_url=first.url) as http:
            r = await http.post(
                "/v1/webhooks",
                headers={"authorization": f"Bearer {site.secret_key}"},
                json={"url": held_receiver.url, "event_types": ["lead.hot"]},
            )
            assert r.status_code == 201, r.text
        load = Load(first.url, site.write_key)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(load.run(n, stop)) for n in range(4)]

        async def loaded() -> bool:
            """enough events acknowledged, a hot visitor among them, and a lead.hot delivery
            in flight (held by the receiver), so that the kill interrupts one"""
            return (
                len(load.acked) >= KILL_AFTER_ACKED
                and bool(load.hot_visitors)
                and held_receiver.held > 0
            )

        await eventually(loaded, timeout=30)
        first.kill()
        stop.set()
        await asyncio.gather(*tasks)

        # Every acknowledged event, exactly once.
        session.expire_all()
        stored = Counter(
            await session.scalars(select(Event.message_id).where(Event.site_id == site.site.id))
        )
        assert not [m for m in load.acked if stored[m] != 1]
        # Every hot lead (acknowledged or only committed) has its lead.hot message, queued.
        hot_leads = set(await session.scalars(select(Lead.id).where(Lead.temperature == "hot")))
        assert await _leads_of(session, site.site.id, load.hot_visitors) <= hot_leads
        messages = dict(
            (await session.execute(
                select(WebhookMessage.lead_id, WebhookMessage.id)
                .where(WebhookMessage.event_type == "lead.hot")
            )).all()
        )  # fmt: skip
        assert set(messages) == hot_leads
        queued = await session.scalar(select(func.count()).select_from(WebhookDelivery))
        assert queued == len(messages)

        # A new server on the same database serves and delivers the whole outbox.
        held_receiver.release.set()
        second = Server(database_url)
        await second.wait_serving()
        async with httpx.AsyncClient(base_url=second.url) as http:
            r = await http.post(
                "/v1/track", auth=(site.write_key, ""), json={"event": "X", "anonymousId": "a"}
            )
            assert r.status_code == 200, r.text
        expected = {f"msg_{m.hex}" for m in messages.values()}

        async def all_delivered() -> bool:
            """every lead.hot message delivered"""
            return expected <= set(held_receiver.delivered)

        await eventually(all_delivered, timeout=40)  # a loaded machine: leases, then retries
    finally:
        first.kill()
        if second is not None:
            second.kill()
