"""Local HTTP servers for the third-party client tests: a shop's static pages (on an origin of
their own), and a reverse proxy in front of Leadheat that can lose answers.

The proxy is how a retry is provoked without touching the browser's own networking (which
would also take over its CORS preflights): it forwards a request to the service, which stores
it, then tells the client it failed, as a load balancer timing out would.
"""

import asyncio
import json
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.tables import Event
from tests.factories import stored_events
from tests.helpers import eventually

# Hop-by-hop headers, which a proxy does not pass on.
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def reply(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class StaticSite(_Server):
    """Serves `files` (path -> (content type, bytes)) to any origin, as a CDN does; anything
    else is a 404."""

    def __init__(self, files: dict[str, tuple[str, bytes]]) -> None:
        self.files = files
        site = self

        class Handler(_Quiet):
            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                path = self.path.split("?")[0]
                if path not in site.files:
                    self.reply(404, b"not found", {"Content-Type": "text/plain"})
                    return
                content_type, body = site.files[path]
                headers = {
                    "Content-Type": content_type,
                    "Cache-Control": "no-store",
                    "Access-Control-Allow-Origin": "*",
                }
                self.reply(200, body, headers)

        super().__init__(Handler)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    status: int  # what the client was answered
    answer: bytes  # the service's answer


@dataclass
class FaultyProxy(_Server):
    """A reverse proxy to `upstream` that keeps the client's Host header (the service then
    names itself as the client reached it). The first POST to each path in `lose_once` is
    forwarded, and the service's answer replaced by a 503 (CORS headers kept, so the
    browser's library sees the status)."""

    upstream: str
    lose_once: set[str] = field(default_factory=set)
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        proxy = self
        client = self.client = httpx.Client(base_url=self.upstream, timeout=30)
        lock = threading.Lock()

        class Handler(_Quiet):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                answer = client.request(self.command, self.path, headers=headers, content=body)
                status = answer.status_code
                path = self.path.split("?")[0]
                with lock:
                    lose = self.command == "POST" and path in proxy.lose_once
                    if lose:
                        proxy.lose_once.discard(path)
                        status = 503
                    seen = {k.lower(): v for k, v in self.headers.items()}
                    proxy.seen.append(Seen(self.command, path, seen, status, answer.content))
                out = {
                    k: v
                    for k, v in answer.headers.items()
                    if k.lower() not in _HOP | {"content-length", "content-encoding"}
                }
                content = answer.content
                if lose:
                    content = json.dumps(
                        {"code": "lost", "message": "The proxy lost the answer.", "details": []}
                    ).encode()
                self.reply(status, content, out)

            do_GET = do_POST = do_OPTIONS = _forward  # noqa: N815

        _Server.__init__(self, Handler)

    def stop(self) -> None:
        super().stop()
        self.client.close()

    def log(self) -> list[str]:
        """What the proxy saw, briefly (for a failing test's message)."""
        return [
            f"{s.method} {s.path} {s.status}" + (f" {s.answer[:300]!r}" if s.status >= 400 else "")
            for s in self.seen
        ]

    def posts(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST" and s.path == path]


@dataclass
class PageRun:
    """What a shop page did while a client library ran on it."""

    result: Any  # what the page's function returned
    requested: list[str]  # every URL the page asked for
    console: list[str]


async def run_on_page(new_context: Any, url: str, calls: str, proxy: FaultyProxy) -> PageRun:
    """Opens `url` in a new browser context and evaluates `calls` (a JS function) there."""
    context = await new_context()
    page = await context.new_page()
    run = PageRun(None, [], [])
    page.on("request", lambda request: run.requested.append(request.url))
    page.on("console", lambda message: run.console.append(message.text))
    await page.goto(url)
    try:
        run.result = await asyncio.wait_for(page.evaluate(calls), timeout=30)
    except TimeoutError:
        pytest.fail(f"the calls did not return; console: {run.console}; requests: {proxy.log()}")
    return run


async def stored_once_retried(
    session: AsyncSession,
    site_id: uuid.UUID,
    count: int,
    retried: Callable[[], bool],
    run: PageRun,
    proxy: FaultyProxy,
) -> list[Event]:
    """The site's events once `count` are stored and `retried()` says the lost delivery came
    again; each stored once."""

    async def all_stored() -> list[Event] | None:
        events = await stored_events(session, site_id)
        session.expunge_all()  # keep their loaded state through the rollback
        await session.rollback()  # on SQLite an open read would hold off the service's writes
        return events if len(events) >= count and retried() else None

    try:
        events = await eventually(all_stored, timeout=30)
    except AssertionError as exc:
        raise AssertionError(f"console: {run.console}; requests: {proxy.log()}") from exc
    assert len({e.message_id for e in events}) == len(events)
    return events
