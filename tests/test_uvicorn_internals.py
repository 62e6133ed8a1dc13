"""app/server.py builds on uvicorn internals, so pyproject pins uvicorn to one minor version
and this module fails if the source of any internal it relies on changes: after an upgrade,
read the new source, adjust app/server.py, then record the new digests here."""

import hashlib
import inspect
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn._subprocess import get_subprocess
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.supervisors.multiprocess import Multiprocess

from app.server import Worker

# uvicorn's: app.server puts Worker in its place in uvicorn's module.
Process: Any = Worker.__bases__[0]

# DeadlineProtocol overrides these and relies on the request cycle's `response_started`,
# `disconnected` and `message_event`.
PROTOCOL: dict[str, Callable[..., object]] = {
    "HttpToolsProtocol.__init__": HttpToolsProtocol.__init__,
    "HttpToolsProtocol.connection_made": HttpToolsProtocol.connection_made,
    "HttpToolsProtocol.connection_lost": HttpToolsProtocol.connection_lost,
    "HttpToolsProtocol.on_message_begin": HttpToolsProtocol.on_message_begin,
    "HttpToolsProtocol.on_headers_complete": HttpToolsProtocol.on_headers_complete,
    "HttpToolsProtocol.on_message_complete": HttpToolsProtocol.on_message_complete,
    "HttpToolsProtocol.send_400_response": HttpToolsProtocol.send_400_response,
    "HttpToolsProtocol.handle_websocket_upgrade": HttpToolsProtocol.handle_websocket_upgrade,
    "RequestResponseCycle.__init__": RequestResponseCycle.__init__,
    "RequestResponseCycle.send": RequestResponseCycle.send,
    "RequestResponseCycle.receive": RequestResponseCycle.receive,
}
# ReusePortMultiprocess relies on Multiprocess building every worker as
# `Process(self.config, self.sockets)` in the four methods it overrides (the whole class: a
# new place that builds one would hand it a socket nobody closes), and on each worker taking
# its sockets with it when it is started. Worker overrides `_healthcheck` and relies on the
# module global `Process` being what Multiprocess builds workers from.
SUPERVISOR: dict[str, Callable[..., object]] = {
    "Multiprocess": Multiprocess,
    "Process.__init__": Process.__init__,
    "Process._healthcheck": Process._healthcheck,
    "Process.target": Process.target,
    "get_subprocess": get_subprocess,
}
DIGESTS = {
    "HttpToolsProtocol.__init__": "4f08999410347141",
    "HttpToolsProtocol.connection_made": "6efb565ff3d36b91",
    "HttpToolsProtocol.connection_lost": "c91a4c9bf2e29c55",
    "HttpToolsProtocol.on_message_begin": "96d377fdc7c2baef",
    "HttpToolsProtocol.on_headers_complete": "1ea8589acfad92d8",
    "HttpToolsProtocol.on_message_complete": "1fbad42dc31fc01f",
    "HttpToolsProtocol.send_400_response": "ae5a4a3782b646fd",
    "HttpToolsProtocol.handle_websocket_upgrade": "179c4f769386ab89",
    "RequestResponseCycle.__init__": "4d2f220910c33c12",
    "RequestResponseCycle.send": "abdd8601b326a8da",
    "RequestResponseCycle.receive": "8124ae006be71184",
    "Multiprocess": "ea4650ac0ee7c09c",
    "Process.__init__": "a8c85f799aae5b2c",
    "Process._healthcheck": "989efe6df65860a1",
    "Process.target": "ad60ca4616de4c34",
    "get_subprocess": "247e5f2553cc9d30",
}


def digest(obj: Callable[..., object]) -> str:
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]


def test_uvicorn_is_the_pinned_minor_version() -> None:
    assert uvicorn.__version__.startswith("0.54."), uvicorn.__version__


def test_the_uvicorn_internals_app_server_relies_on_are_unchanged() -> None:
    digests = {name: digest(obj) for name, obj in {**PROTOCOL, **SUPERVISOR}.items()}
    assert digests == DIGESTS


def test_a_worker_killed_while_its_ping_is_waiting_is_found_dead_at_once() -> None:
    """The supervisor pings each worker in turn; one killed after the ping was sent never
    answers, and uvicorn's own check waited the whole health-check timeout (30 s here) before
    replacing it. A worker that does not answer (it sleeps) stands for one killed mid-ping."""
    worker = Worker.__new__(Worker)  # only the pipe and the process: no server
    worker.parent_conn, worker.child_conn = multiprocessing.Pipe()
    worker.process = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(60,))
    worker.process.start()
    killer = threading.Timer(0.5, os.kill, (worker.process.pid, signal.SIGKILL))
    killer.start()
    try:
        began = time.monotonic()
        assert worker._healthcheck(timeout=30) is None
        assert time.monotonic() - began < 10
    finally:
        killer.cancel()
        worker.process.kill()
        worker.process.join()
