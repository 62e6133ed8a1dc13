"""Webhook test helpers: a real HTTP receiver on 127.0.0.1, a controllable clock, and the
service's settings for them."""

import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings, WebhookSettings
from app.crypto import SecretBox, secret_box
from app.webhooks.models import WebhookMessage
from app.webhooks.schemas import WebhookEvent
from tests.conftest import make_settings
from tests.helpers import eventually

DROP = 0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers with `responses` in turn (then `default`): (status, headers, body); status
    DROP closes the connection without an answer (the sender sees a protocol error)."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    responses: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    default: tuple[int, dict[str, str], bytes] = (200, {}, b"ok")
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_response(self) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            return self.responses.pop(0) if self.responses else self.default

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """What arrived, once `count` requests have; the event loop keeps running meanwhile
        (the service's delivery loop is on it)."""

        async def arrived() -> list[Received] | None:
            """`count` requests received"""
            with self.lock:
                return list(self.received) if len(self.received) >= count else None

        return await eventually(arrived, timeout)


DOCUMENTED_EVENT = TypeAdapter(WebhookEvent)


@pytest.fixture(autouse=True)
async def _every_message_is_as_documented(
    request: pytest.FixtureRequest,
) -> AsyncIterator[None]:
    """After each test here, every message it queued is checked against the models the OpenAPI
    document's webhooks are made from (app/webhooks/schemas.py): the payload builders cannot
    drift from the documentation unnoticed. (Set up after, so torn down before, the emptying
    of the tables.)"""
    yield
    if "db_engine" not in request.fixturenames or request.node.get_closest_marker(
        "hand_made_messages"
    ):
        return
    engine: AsyncEngine = request.getfixturevalue("db_engine")
    async with engine.connect() as conn:
        payloads = (await conn.scalars(select(WebhookMessage.payload))).all()
    for payload in payloads:
        DOCUMENTED_EVENT.validate_python(payload)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("content-length", 0))
            body = self.rfile.read(length)
            with state.lock:
                state.received.append(Received(self.path, dict(self.headers.items()), body))
            status, headers, answer = state.next_response()
            if status == DROP:
                self.close_connection = True
                return
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


class Clock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


@pytest.fixture
def clock() -> Clock:
    """Starts ahead of the wall clock, so what the API queues now is already due (with room
    for a slow machine between the clock's start and the queueing)."""
    return Clock(datetime.now(UTC) + timedelta(seconds=30))


def webhook_settings(**overrides: Any) -> WebhookSettings:
    return WebhookSettings(allow_private_networks=True, retry_jitter=0, **overrides)


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The service's settings in these tests: private addresses allowed (the receiver is on
    127.0.0.1); background loops on, polling fast."""
    return make_settings(database_url, webhooks=webhook_settings(poll_seconds=0.2))


@pytest.fixture
def box(settings: Settings) -> SecretBox:
    """The key the service encrypts webhook secrets with, for workers the tests drive."""
    return secret_box(settings)
