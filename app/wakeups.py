"""Wake-ups: a background loop sleeps until its work appears instead of polling for it often.

A loop waits on a named event of its process (`Wakeups.event`); a transaction that creates
work for it calls `notify(conn, name)`:
- in this process, the event is set once the transaction has ended (at the connection's
  check-in into the pool, which follows the commit; or `wake_for`, for connections kept out
  of the pool). A rollback wakes the loop for nothing, which is harmless;
- in the other processes (PostgreSQL only): the transaction sends `NOTIFY`, which PostgreSQL
  delivers only if it commits, to every process's `listen` connection (one each, reconnecting
  after errors), which sets the event. It is sent when asked (`others=True`: rare work such as
  jobs, which an idle process should start at once) or when no loop of this process serves the
  name (a job process, an API replica without background work): the hot paths' commits (the
  webhook outbox's) stay free of it when their own process delivers.
Loops still poll, rarely: a fallback for a notification missed while a listener reconnected.
"""

import asyncio
import contextlib
import logging
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

logger = logging.getLogger(__name__)

CHANNEL = "leadheat_wake"
_KEY = "leadheat.wake"
# A listening connection is checked this often (a half-open TCP connection tells nothing).
KEEPALIVE_SECONDS = 60.0


class Wakeups:
    """A process's named wake-up events (one set per engine's pool)."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._served: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self) -> None:
        self._loop = asyncio.get_running_loop()

    def event(self, name: str) -> asyncio.Event:
        found = self._events.get(name)
        if found is None:
            found = self._events[name] = asyncio.Event()
        return found

    def wake(self, *names: str) -> None:
        """Set the events of `names` (from any thread)."""
        if self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to wake
            for name in names:
                self._loop.call_soon_threadsafe(self.event(name).set)

    def wake_all(self) -> None:
        self.wake(*self._events)

    def wake_for(self, info: dict[str, Any]) -> None:
        """Wake what a connection's `info` (see `notify`) asked for, and clear it."""
        names = info.pop(_KEY, None)
        if names:
            self.wake(*names)

    @contextlib.contextmanager
    def serving(self, name: str) -> Iterator[asyncio.Event]:
        """While a loop of this process waits on `name`'s event (see `notify`)."""
        self._served[name] += 1
        try:
            yield self.event(name)
        finally:
            self._served[name] -= 1

    def serves(self, name: str) -> bool:
        return self._served[name] > 0


_wakeups: "weakref.WeakKeyDictionary[Any, Wakeups]" = weakref.WeakKeyDictionary()


def wakeups_for(engine: AsyncEngine) -> Wakeups:
    """The wake-ups of this engine's process (created, and hooked to check-ins, once; shared
    by the engine's `execution_options` copies, which share its pool)."""
    pool = engine.sync_engine.pool
    found = _wakeups.get(pool)
    if found is None:
        found = _wakeups[pool] = Wakeups()
        wakeups = found

        def on_checkin(_dbapi_connection: Any, record: Any) -> None:
            if record is not None:
                wakeups.wake_for(record.info)

        event.listen(pool, "checkin", on_checkin)
    with contextlib.suppress(RuntimeError):
        found.bind()
    return found


async def notify(conn: AsyncConnection, *names: str, others: bool | None = None) -> None:
    """Wake the loops of `names` once `conn`'s transaction has committed: this process's, and
    the other processes' if `others` (None: if no loop of this process serves a name)."""
    wakeups = wakeups_for(conn.engine)
    conn.info[_KEY] = conn.info.get(_KEY, frozenset()) | frozenset(names)
    if conn.dialect.name != "postgresql":
        return
    wanted = [n for n in names if others or (others is None and not wakeups.serves(n))]
    if wanted:
        await conn.execute(
            text("SELECT pg_notify(:channel, :names)"),
            {"channel": CHANNEL, "names": ",".join(wanted)},
        )


async def wait(stop: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    """A loop's sleep: until it is stopped, woken, or `timeout` seconds pass."""
    if timeout <= 0:
        return
    waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())}
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


async def sleep(stop: asyncio.Event, seconds: float) -> None:
    """A periodic loop's sleep, which nothing wakes early but its stop."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def serve_passes(
    engine: AsyncEngine,
    name: str,
    stop: asyncio.Event,
    one_pass: Callable[[], Awaitable[bool]],
    poll_seconds: float,
    iterations: int | None = None,
) -> None:
    """A loop woken by `name`: a pass, then a sleep until a commit notifies `name`, the loop
    stops, or `poll_seconds` pass (the fallback). A pass that answers True found work and may
    have left some: the next follows at once. With `iterations` (tests drive passes), that
    many passes and no sleep."""
    done = 0
    with wakeups_for(engine).serving(name) as woken:
        while not stop.is_set() and (iterations is None or done < iterations):
            done += 1
            woken.clear()  # before the pass: a notice during it means another
            if not await one_pass() and iterations is None:
                await wait(stop, woken, poll_seconds)


async def listen(engine: AsyncEngine, stop: asyncio.Event, retry_seconds: float = 1.0) -> None:
    """This process's listening connection (PostgreSQL; nothing to do on SQLite, one process):
    sets the events the other processes' commits notify. After a lost connection it
    reconnects, and wakes every loop, since notifications sent meanwhile were missed."""
    if engine.dialect.name != "postgresql":
        return
    wakeups = wakeups_for(engine)
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def on_notification(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        wakeups.wake(*payload.split(","))

    while not stop.is_set():
        lost = asyncio.Event()
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(dsn, timeout=10)
            conn.add_termination_listener(lambda _c, lost=lost: lost.set())
            await conn.add_listener(CHANNEL, on_notification)
            wakeups.wake_all()  # what was created while nobody here listened
            while not stop.is_set() and not lost.is_set():
                await wait(stop, lost, KEEPALIVE_SECONDS)
                if not stop.is_set() and not lost.is_set():
                    await conn.execute("SELECT 1", timeout=10)
        except Exception as exc:  # the database down, the connection killed: try again
            logger.warning("wake-up listener: %s; reconnecting", exc)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), timeout=5)
        if not stop.is_set():
            if lost.is_set():
                logger.warning("wake-up listener: connection lost; reconnecting")
            await wait(stop, asyncio.Event(), retry_seconds)
