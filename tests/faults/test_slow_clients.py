"""Slow clients get read deadlines: headers within `header_timeout`, the body within
`body_timeout` of the headers (else a 408), while the server goes on serving everyone else.
Real server (the protocol class `leadheat serve` uses), raw sockets."""

import asyncio
import base64
import time

import httpx
import pytest

from app.main import create_app
from app.server import DeadlineProtocol, ServerConfig
from tests.faults.helpers import served

DEADLINE = 1.0
SLACK = 3.0  # a loaded 2-core machine: closed within DEADLINE + SLACK, never before DEADLINE


@pytest.fixture
def server(settings, db_engine):
    app = create_app(settings)
    with served(app, header_timeout=DEADLINE, body_timeout=DEADLINE) as address:
        yield address


async def read_until_closed(reader: asyncio.StreamReader) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed."""
    data = await asyncio.wait_for(reader.read(), timeout=DEADLINE + SLACK + 5)
    return data, time.monotonic()


async def normal_requests_until(url: str, done: asyncio.Event) -> list[float]:
    """When each of a normal client's requests was answered (200), until `done`."""
    answered = []
    async with httpx.AsyncClient(base_url=url) as client:
        while not done.is_set():
            r = await client.get("/health/live")
            assert r.status_code == 200
            answered.append(time.monotonic())
            await asyncio.sleep(0.02)  # the normal client's pace between requests
    return answered


async def test_stalled_headers_and_bodies_are_cut_off_while_others_are_served(server, site):
    host, port = server
    started = time.monotonic()
    silent = await asyncio.open_connection(host, port)  # connects, never sends a byte
    half_headers = await asyncio.open_connection(host, port)
    half_headers[1].write(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Ty")
    half_body = await asyncio.open_connection(host, port)
    half_body[1].write(
        b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Basic " + basic(site.write_key) + b"\r\n"
        b'Content-Length: 1000\r\n\r\n{"batch": ['
    )
    done = asyncio.Event()
    others = asyncio.create_task(normal_requests_until(f"http://{host}:{port}", done))
    try:
        results = await asyncio.gather(
            *(read_until_closed(reader) for reader, _ in (silent, half_headers, half_body))
        )
    finally:
        done.set()
        for _, writer in (silent, half_headers, half_body):
            writer.close()
    answered = await others
    first_closed = min(closed_at for _, closed_at in results)
    assert [t for t in answered if t < first_closed]  # served while the others stalled
    (silent_data, _), (headers_data, _), (body_data, _) = results
    assert silent_data == headers_data == b""  # no request: just closed
    status, _, rest = body_data.partition(b"\r\n")
    assert status == b"HTTP/1.1 408 Request Timeout"
    assert b"content-type: application/json" in rest
    assert b'"code":"request_timeout"' in rest
    for _, closed_at in results:
        assert DEADLINE * 0.9 <= closed_at - started <= DEADLINE + SLACK


async def test_a_slow_client_within_its_deadlines_is_served(server):
    host, port = server
    reader, writer = await asyncio.open_connection(host, port)
    for piece in (b"GET /health/live HTTP/1.1\r\n", b"Host: x\r\n", b"Connection: close\r\n\r\n"):
        writer.write(piece)
        await asyncio.sleep(DEADLINE / 5)  # the client's own pace, not a wait for the server
    data = await asyncio.wait_for(reader.read(), timeout=10)
    assert data.startswith(b"HTTP/1.1 200 OK")
    writer.close()


async def test_a_malformed_request_gets_a_json_400(server):
    host, port = server
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), timeout=10)
    assert data.startswith(b"HTTP/1.1 400 Bad Request")
    assert b'"code":"invalid_http"' in data
    writer.close()


def basic(write_key: str) -> bytes:
    return base64.b64encode(f"{write_key}:".encode())


def test_serve_uses_the_deadline_protocol():
    config = ServerConfig("app.main:create_served_app", factory=True)
    assert config.http is DeadlineProtocol
    assert (config.header_timeout, config.body_timeout) == (5.0, 30.0)
