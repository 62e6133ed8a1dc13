"""Channel test fixtures: a local fake of the Telegram Bot API (a real HTTP server speaking its
request and answer shapes), a local SMTP server (aiosmtpd) as the inbox, and the service's
settings pointing at both."""

import email
import email.policy
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from app.config import ChannelSettings, Settings, SmtpSettings
from tests.conftest import make_settings
from tests.helpers import eventually, free_port
from tests.webhooks.conftest import Receiver, box, clock, receiver, webhook_settings  # noqa: F401

BOT_TOKEN = "123456:TEST-token_abcdefghijklmnopqrstuv"
BOT_USERNAME = "leadheat_test_bot"
PUBLIC_URL = "http://leadheat.test"


@dataclass
class BotCall:
    token: str
    method: str
    params: dict[str, Any]


@dataclass
class FakeBotApi:
    """Answers like api.telegram.org: `{"ok": true, "result": ...}`, or `{"ok": false,
    "error_code", "description"}` (with `parameters.retry_after` on 429). `failures[method]`
    are answered first, in turn: (status, description, retry_after)."""

    url: str = ""
    token: str = BOT_TOKEN
    calls: list[BotCall] = field(default_factory=list)
    failures: dict[str, list[tuple[int, str, int | None]]] = field(default_factory=dict)
    updates: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    next_message_id: int = 100

    def answer(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, dict]:
        with self.lock:
            self.calls.append(BotCall(token, method, params))
            if token != self.token:
                return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
            queued = self.failures.get(method)
            if queued:
                status, description, retry_after = queued.pop(0)
                body: dict[str, Any] = {
                    "ok": False,
                    "error_code": status,
                    "description": description,
                }
                if retry_after is not None:
                    body["parameters"] = {"retry_after": retry_after}
                return status, body
            if method == "getMe":
                result: Any = {
                    "id": 123456,
                    "is_bot": True,
                    "first_name": "Leadheat",
                    "username": BOT_USERNAME,
                }
            elif method in ("sendMessage", "editMessageReplyMarkup"):
                self.next_message_id += 1
                result = {
                    "message_id": params.get("message_id", self.next_message_id),
                    "date": int(time.time()),
                    "chat": {"id": params.get("chat_id"), "type": "private"},
                    "text": params.get("text", ""),
                }
            elif method == "getUpdates":
                offset = params.get("offset", 0)
                result = [u for u in self.updates if u["update_id"] >= offset]
            elif method in ("setWebhook", "deleteWebhook", "answerCallbackQuery"):
                result = True
            else:
                return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
            return 200, {"ok": True, "result": result}

    def of(self, method: str) -> list[BotCall]:
        with self.lock:
            return [c for c in self.calls if c.method == method]

    async def wait_for(self, method: str, match: Any = None, timeout: float = 10.0) -> BotCall:
        """The first call of `method` whose params `match` (a predicate) once one came."""

        async def arrived() -> BotCall | None:
            """a matching Bot API call"""
            for call in self.of(method):
                if match is None or match(call.params):
                    return call
            return None

        return await eventually(arrived, timeout)


@pytest.fixture
def bot_api() -> Iterator[FakeBotApi]:
    state = FakeBotApi()
    path = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>\w+)$")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("content-length", 0))
            raw = self.rfile.read(length)
            matched = path.match(self.path)
            if matched is None:
                status, body = 404, {"ok": False, "error_code": 404, "description": "Not Found"}
            else:
                params = json.loads(raw) if raw else {}
                status, body = state.answer(matched["token"], matched["method"], params)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@dataclass
class Inbox:
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    async def wait_for(self, to: str, subject: str, timeout: float = 10.0) -> EmailMessage:
        async def arrived() -> EmailMessage | None:
            """an email to the address with the subject"""
            with self.lock:
                for m in self.messages:
                    if m["To"] == to and subject in str(m["Subject"]):
                        return m
            return None

        return await eventually(arrived, timeout)


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    state = Inbox(port=free_port())
    controller = Controller(state, hostname=state.host, port=state.port)
    controller.start()
    yield state
    controller.stop()


def channel_settings(
    database_url: str, bot_api: FakeBotApi, inbox: Inbox, **overrides: Any
) -> Settings:
    return make_settings(
        database_url,
        webhooks=webhook_settings(poll_seconds=0.2),
        public_url=PUBLIC_URL,
        telegram_api_base=bot_api.url,
        smtp=SmtpSettings(host=inbox.host, port=inbox.port, security="none"),
        channels=ChannelSettings(),
        **overrides,
    )


@pytest.fixture
def settings(database_url: str, bot_api: FakeBotApi, inbox: Inbox) -> Settings:
    return channel_settings(database_url, bot_api, inbox)
