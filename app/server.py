"""Running uvicorn with several worker processes, each on its own SO_REUSEPORT socket.

uvicorn's own multi-process mode shares one listening socket between its workers, and
whichever worker wakes first accepts every connection waiting in the queue (asyncio accepts
up to `backlog` at a time). Clients that keep a few connections open for long (a reverse
proxy's keep-alive pool, a load balancer, a backend library, a benchmark) then all land on
one worker while the others sit idle.

With SO_REUSEPORT (Linux 3.9+, the way nginx's `reuse_port` works) every worker has its own
listening socket on the same address, and the kernel spreads new connections over them by a
hash of the connection. uvicorn's supervisor is kept as it is (health checks, restarts,
signals); only the sockets change: each worker it starts gets a fresh socket, and the parent
closes its own copy as soon as the worker has it, so that a worker that dies takes its
socket with it instead of leaving one nobody accepts on.

Every connection also gets read deadlines (`DeadlineProtocol`): uvicorn has none, so a client
that trickles its headers or body held its connection (and memory) open forever.
"""

import asyncio
import contextlib
import pickle
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson
import uvicorn
from uvicorn import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import multiprocess
from uvicorn.supervisors.multiprocess import Multiprocess

STARTUP_FAILURE = 3  # uvicorn's exit status when the server could not start


def _raw_response(status: bytes, code: str, message: str) -> bytes:
    # The error shape of app.errors, not imported: a worker process unpickles this module
    # (its ServerConfig) before it answers the supervisor's first health check, in 5 s.
    body = orjson.dumps({"code": code, "message": message, "details": []})
    head = (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
    )
    return head + body


REQUEST_TIMEOUT = _raw_response(
    b"408 Request Timeout", "request_timeout", "The request body did not arrive in time."
)


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with read deadlines: a request's headers must arrive within
    `header_timeout` seconds of the connection (or of the request's first byte, on a kept-alive
    one), else the connection is closed; its body within `body_timeout` seconds of the
    headers, else a 408 (if nothing was answered yet) and the connection is closed. Requests
    being processed, and idle kept-alive connections (uvicorn's `timeout_keep_alive`), are not
    affected. Malformed requests get a JSON 400 instead of uvicorn's plain text.

    It relies on uvicorn internals (the parser callbacks and the request cycle's fields):
    tests/test_uvicorn_internals.py fails if the uvicorn source they come from changes."""

    def __init__(self, config: Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.header_timeout: float = getattr(config, "header_timeout", 5.0)
        self.body_timeout: float = getattr(config, "body_timeout", 30.0)
        self._read_deadline: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float, expired: Any) -> None:
        self._disarm()
        self._read_deadline = self.loop.call_later(seconds, expired)

    def _disarm(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout, self._headers_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.header_timeout, self._headers_too_slow)

    def on_headers_complete(self) -> None:
        self._arm(self.body_timeout, self._body_too_slow)  # disarmed when the body is in
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _headers_too_slow(self) -> None:
        self._read_deadline = None
        self.transport.close()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the connection is the WebSocket protocol's from here
        super().handle_websocket_upgrade()

    def _body_too_slow(self) -> None:
        self._read_deadline = None
        cycle = self.cycle
        if cycle is None:  # pragma: no cover (armed once a request's headers are in)
            self.transport.close()
            return
        if not cycle.response_started:
            self.transport.write(REQUEST_TIMEOUT)
        # The app's next receive() gets http.disconnect, and whatever it sends goes nowhere.
        cycle.disconnected = True
        cycle.message_event.set()
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        self.transport.write(_raw_response(b"400 Bad Request", "invalid_http", msg))
        self.transport.close()


class ServerConfig(Config):
    """uvicorn's Config, serving with `DeadlineProtocol` and its two deadlines."""

    def __init__(
        self, app: Any, *, header_timeout: float = 5.0, body_timeout: float = 30.0, **kwargs: Any
    ) -> None:
        kwargs.setdefault("http", DeadlineProtocol)
        super().__init__(app, **kwargs)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout


def reuse_port_supported() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def bind_reuse_port(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on host:port that other processes may bind as well."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


class Worker(multiprocess.Process):
    """uvicorn's handle on a worker process, whose health check gives up as soon as the worker
    is dead. uvicorn's waits the whole timeout (`WORKER_HEALTHCHECK_SECONDS`) for the answer to
    a ping that a worker killed meanwhile never sends, and replaces nobody until then."""

    def _healthcheck(self, timeout: float) -> bool | None:
        try:
            self.parent_conn.send(b"ping")
            deadline = time.monotonic() + timeout
            while not self.parent_conn.poll(max(0.0, min(0.2, deadline - time.monotonic()))):
                if not self.process.is_alive() or time.monotonic() >= deadline:
                    return None
            started: bool = self.parent_conn.recv()
            return started
        except (OSError, EOFError, pickle.UnpicklingError):
            return None


# Multiprocess builds its workers from this module global (tests/test_uvicorn_internals.py).
multiprocess.Process = Worker  # type: ignore[misc]


class ReusePortMultiprocess(Multiprocess):
    """uvicorn's Multiprocess supervisor, but each worker process on its own socket.

    It relies on where Multiprocess builds its workers: tests/test_uvicorn_internals.py fails
    if the uvicorn source of that changes."""

    def __init__(self, config: Config, on_worker_exit: Callable[[int], None] | None = None) -> None:
        self._on_worker_exit = on_worker_exit
        # The port is fixed once, so that a port of 0 ("any free port") means the same port
        # for every worker; this first socket stays open until the first worker has it.
        self._first: socket.socket | None = bind_reuse_port(
            config.host, config.port, config.backlog
        )
        config.port = self._first.getsockname()[1]
        super().__init__(config, [])

    # Multiprocess builds every worker as `Process(self.config, self.sockets)` (at start, on
    # restarts, on SIGHUP and SIGTTIN): a property hands each one a socket of its own.
    @property  # type: ignore[override]
    def sockets(self) -> list[socket.socket]:
        if self._first is not None:
            sock, self._first = self._first, None
        else:
            sock = bind_reuse_port(self.config.host, self.config.port, self.config.backlog)
        self._handed_out.append(sock)
        return [sock]

    @sockets.setter
    def sockets(self, value: Any) -> None:
        self._handed_out: list[socket.socket] = []

    def _close_handed_out(self) -> None:
        # Called once the workers are started: each has its own copy of its socket now.
        for sock in self._handed_out:
            sock.close()
        self._handed_out.clear()

    def init_processes(self) -> None:
        super().init_processes()
        self._close_handed_out()

    def _replaced(self, before: set[int | None]) -> None:
        """Tell `on_worker_exit` of the workers that were replaced since `before`."""
        if self._on_worker_exit is not None:
            for pid in before - {process.pid for process in self.processes}:
                if pid is not None:
                    self._on_worker_exit(pid)

    def keep_subprocess_alive(self) -> None:
        before = {process.pid for process in self.processes}
        super().keep_subprocess_alive()
        self._close_handed_out()
        self._replaced(before)

    def restart_all(self) -> None:
        before = {process.pid for process in self.processes}
        super().restart_all()
        self._close_handed_out()
        self._replaced(before)

    def handle_ttin(self) -> None:
        super().handle_ttin()
        self._close_handed_out()


WORKER_HEALTHCHECK_SECONDS = 30


def run(
    app: str,
    *,
    workers: int,
    on_worker_exit: Callable[[int], None] | None = None,
    **kwargs: Any,
) -> None:
    """Like `uvicorn.run(app, workers=N, ...)` with a `ServerConfig` (read deadlines; their
    two settings are keyword arguments here), and a socket per worker where the platform has
    SO_REUSEPORT; `on_worker_exit` is told the pid of each worker that died or was replaced
    there."""
    # A worker that has not answered the supervisor's ping in this long is killed as hung.
    # uvicorn's 5 s kills workers that are only slow to import on a busy machine; a dead
    # worker is replaced at once whatever this is.
    kwargs.setdefault("timeout_worker_healthcheck", WORKER_HEALTHCHECK_SECONDS)
    config = ServerConfig(app, workers=workers, **kwargs)  # also configures logging
    with contextlib.suppress(KeyboardInterrupt):
        if workers <= 1:
            server = uvicorn.Server(config)
            server.run()
            if not server.started:
                sys.exit(STARTUP_FAILURE)
        elif reuse_port_supported():
            ReusePortMultiprocess(config, on_worker_exit).run()
        else:
            Multiprocess(config, sockets=[config.bind_socket()]).run()


def check_can_listen(host: str, port: int) -> None:
    """Raises OSError (EADDRINUSE...) when host:port cannot be listened on now. The probe
    sets no SO_REUSEPORT, so a port that another server holds with it (`serve --workers N`
    binds so) counts as taken too, where the workers' own sockets would share it silently."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As uvicorn's sockets: connections of a stopped server in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
