"""Helpers every kind of test uses: free ports, waiting for a condition instead of a fixed
sleep, and the setting a LEADHEAT_ variable names."""

import asyncio
import inspect
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import uvicorn
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from app.config import Settings

T = TypeVar("T")

POLL_SECONDS = 0.02


def free_port() -> int:
    """A port nothing listens on now (for a server the test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _timed_out(what: object, timeout: float) -> AssertionError:
    doc = what.__doc__ if inspect.isfunction(what) else None
    return AssertionError(f"not so within {timeout} s: {doc or what}")


def wait_until(
    predicate: Callable[[], T | None], timeout: float = 15.0, interval: float = POLL_SECONDS
) -> T:
    """Polls `predicate` every `interval` seconds until it returns something truthy, and
    returns that; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise _timed_out(predicate, timeout)
        time.sleep(interval)


def start_in_thread(server: uvicorn.Server) -> threading.Thread:
    """Runs the server in a daemon thread; returns once it serves."""
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def started() -> bool:
        if not thread.is_alive():
            raise RuntimeError("the server did not start")
        return bool(server.started)

    wait_until(started, timeout=15)
    return thread


async def eventually(
    check: Callable[[], Awaitable[T | None]], timeout: float = 15.0, interval: float = POLL_SECONDS
) -> T:
    """`wait_until` for an async check; the event loop runs meanwhile (the service under test
    may be on it)."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise _timed_out(check, timeout)
        await asyncio.sleep(interval)


def setting_of(variable: str) -> FieldInfo | None:
    """The field of app.config's settings that a LEADHEAT_ variable sets (nested groups
    through `__`), or None when the variable sets nothing."""
    model: type[BaseModel] = Settings
    *groups, name = variable.removeprefix("LEADHEAT_").lower().split("__")
    for group in groups:
        field = model.model_fields.get(group)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model.model_fields.get(name)
