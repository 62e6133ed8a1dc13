"""Running uvicorn with several worker processes, each on its own SO_REUSEPORT socket.

uvicorn's own multi-process mode shares one listening socket between its workers, and
whichever worker wakes first accepts every connection waiting in the queue (asyncio accepts
up to `backlog` at a time). Clients that keep a few connections open for long (a reverse
proxy's keep-alive pool, a load balancer, a backend library, a benchmark) then all land on
one worker while the others sit idle: measured here with 2 workers and 64 keep-alive
connections, one worker at 85% CPU and the other near 0%.

With SO_REUSEPORT (Linux 3.9+, the way nginx's `reuse_port` works) every worker has its own
listening socket on the same address, and the kernel spreads new connections over them by a
hash of the connection. uvicorn's supervisor is kept as it is (health checks, restarts,
signals); only the sockets change: each worker it starts gets a fresh socket, and the parent
closes its own copy as soon as the worker has it, so that a worker that dies takes its
socket with it instead of leaving one nobody accepts on.
"""

import contextlib
import socket
from typing import Any

from uvicorn import Config
from uvicorn.supervisors.multiprocess import Multiprocess


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


class ReusePortMultiprocess(Multiprocess):
    """uvicorn's Multiprocess supervisor, but each worker process on its own socket."""

    def __init__(self, config: Config) -> None:
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

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()
        self._close_handed_out()

    def restart_all(self) -> None:
        super().restart_all()
        self._close_handed_out()

    def handle_ttin(self) -> None:
        super().handle_ttin()
        self._close_handed_out()


def run(app: str, *, workers: int, **kwargs: Any) -> None:
    """Like `uvicorn.run(app, workers=N, ...)`, with a socket per worker where the platform
    has SO_REUSEPORT."""
    import uvicorn

    if workers <= 1 or not reuse_port_supported():
        uvicorn.run(app, workers=workers, **kwargs)
        return
    config = Config(app, workers=workers, **kwargs)  # also configures logging
    with contextlib.suppress(KeyboardInterrupt):
        ReusePortMultiprocess(config).run()
