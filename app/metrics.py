"""Prometheus metrics (prometheus-client): what the service counts, and the HTTP middleware
that times requests and gives each its id.

Each process counts in memory. Under `leadheat serve --workers N` the CLI sets
`PROMETHEUS_MULTIPROC_DIR` before the workers start (prometheus-client reads it when it is
first imported, which a spawned worker does afresh): every worker then writes its values to
memory-mapped files there, and a scrape of any worker sums every worker's files
(`MultiProcessCollector`). The gauges read from the database at scrape time are not kept
here (app.monitoring), so they are never summed across workers.

The hot path pays little: label children are looked up once and kept (`labels()` takes a
lock and builds a key), counts are added once per group or request, not per event.
"""

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import REQUEST_ID, request_id_from

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"

# No `<name>_created` series beside every counter and histogram: nothing here reads them.
disable_created_metrics()

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

EVENTS_ACCEPTED = Counter(
    "leadheat_events_accepted",
    "Events stored (new), crawlers' included: the sum of the API answers' `accepted`",
)
EVENTS_DUPLICATE = Counter(
    "leadheat_events_duplicate",
    "Events not stored again: their (site, messageId) was stored before (a client's retry)",
)
EVENTS_CRAWLER = Counter(
    "leadheat_events_crawler",
    "Accepted events from crawlers (stored unscored, or dropped with store_bot_events off)",
)
EVENTS_SUPPRESSED = Counter(
    "leadheat_events_suppressed",
    "Events not stored because they carry an erased person's id (DELETE /v1/people),"
    " answered as accepted",
)
EVENTS_CONSENT_REFUSED = Counter(
    "leadheat_events_consent_refused",
    "Events not stored because their context refuses tracking consent, answered as accepted",
)
EVENTS_REJECTED = Counter(
    "leadheat_events_rejected",
    "Events refused one by one (a batch's bad events, a single call's), by the error code",
    ["reason"],
)
GROUP_EVENTS = Histogram(
    "leadheat_ingest_group_events",
    "Events in one group commit (one transaction for many requests)",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000),
)
GROUP_COMMIT_SECONDS = Histogram(
    "leadheat_ingest_group_commit_seconds",
    "A group's storing and commit, retries included",
    buckets=LATENCY_BUCKETS,
)
GROUP_RETRIES = Counter(
    "leadheat_ingest_group_retries",
    "Group transactions started over (a conflict with another replica, a lost connection)",
)
REQUEST_SECONDS = Histogram(
    "leadheat_http_request_duration_seconds",
    "HTTP requests' time to the end of the answer, by route template",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
REQUESTS = Counter(
    "leadheat_http_requests",
    "HTTP requests answered, by route template and status",
    ["method", "route", "status"],
)
WEBHOOK_ATTEMPTS = Counter(
    "leadheat_webhook_attempts",
    "Webhook delivery attempts by outcome: success (2xx), http_error (another status), timeout,"
    " network_error, refused (the address is not allowed)",
    ["outcome"],
)
WEBHOOK_ATTEMPT_SECONDS = Histogram(
    "leadheat_webhook_attempt_duration_seconds",
    "A delivery attempt's HTTP request, to its answer or failure",
    buckets=LATENCY_BUCKETS,
)
TIMER_LAG_SECONDS = Histogram(
    "leadheat_timer_lag_seconds",
    "How late a due timer (first-contact deadline and escalations, cart) was taken up",
    ["kind"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)

# Bound children of the labelled metrics (looked up once: `labels()` locks and builds keys).
_REJECTED: dict[str, Any] = {}


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_DIR))


@contextmanager
def multiprocess_directory(workers: int) -> Iterator[None]:
    """For `leadheat serve --workers N` (N > 1), around the server's run: the workers'
    PROMETHEUS_MULTIPROC_DIR. Unless the operator set one, a new temporary directory, removed
    at the end; an operator's own is emptied of metric files first (prometheus-client's
    rule: a previous run's files would be summed in)."""
    if workers <= 1:
        yield
        return
    given = os.environ.get(MULTIPROC_DIR)
    if given:
        for stale in Path(given).glob("*.db"):
            stale.unlink(missing_ok=True)
        yield
        return
    path = tempfile.mkdtemp(prefix="leadheat-metrics-")
    os.environ[MULTIPROC_DIR] = path  # inherited by the workers, which import the client anew
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_DIR, None)
        shutil.rmtree(path, ignore_errors=True)


def drop_own_files() -> None:
    """For a process that counts nothing (a job process spawned by a server worker, which
    imports the server's modules again, and so makes metric files under the inherited
    PROMETHEUS_MULTIPROC_DIR): remove its files, which every scrape would otherwise read, one
    more set per job, for as long as the server runs. Its values stay mapped in memory."""
    directory = os.environ.get(MULTIPROC_DIR)
    if directory:
        for own in Path(directory).glob(f"*_{os.getpid()}.db"):
            own.unlink(missing_ok=True)


def worker_exited(pid: int) -> None:
    """A server worker process ended: its live gauges' files go (its counters stay summed:
    a counter must not go down when a worker is replaced)."""
    if multiprocess_mode():
        prometheus_multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def process_registry() -> CollectorRegistry:
    """What this process's scrape shows of the metrics above: its own, or with
    PROMETHEUS_MULTIPROC_DIR every process's of that directory, summed."""
    if not multiprocess_mode():
        return REGISTRY
    registry = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


class _Snapshot(Collector):
    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def exposition(extra: Sequence[Metric] = ()) -> bytes:
    """The text format of the metrics above and of `extra` (read at scrape time)."""
    body = generate_latest(process_registry())
    if extra:
        body += generate_latest(_Snapshot(extra))
    return body


def count_group(
    events: int, duplicates: int, crawlers: int, seconds: float, suppressed: int = 0
) -> None:
    """One committed group: its events by outcome, its size and its time."""
    if events > duplicates + suppressed:
        EVENTS_ACCEPTED.inc(events - duplicates - suppressed)
    if duplicates:
        EVENTS_DUPLICATE.inc(duplicates)
    if suppressed:
        EVENTS_SUPPRESSED.inc(suppressed)
    if crawlers:
        EVENTS_CRAWLER.inc(crawlers)
    GROUP_EVENTS.observe(events)
    GROUP_COMMIT_SECONDS.observe(seconds)


def count_consent_refused(events: int) -> None:
    EVENTS_CONSENT_REFUSED.inc(events)


def count_rejected(reasons: Iterable[str]) -> None:
    for reason in reasons:
        child = _REJECTED.get(reason)
        if child is None:
            child = _REJECTED[reason] = EVENTS_REJECTED.labels(reason)
        child.inc()


_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
UNMATCHED = "unmatched"  # the route of a request no route took (a 404): one series, not a path

access_logger = logging.getLogger("app.access")


class ObservedRequests:
    """ASGI middleware, outermost of the app's: gives each request its id (the client's
    `X-Request-ID` if usable, else a new one) in `app.logs.REQUEST_ID` and in the answer's
    `X-Request-ID`; times it and counts it by route template (`scope["route"]`, set by the
    routing; never the raw path, whose ids would make a series each); with `access_log`,
    logs a line for it."""

    def __init__(self, app: ASGIApp, *, access_log: bool = False) -> None:
        self.app = app
        self.access_log = access_log
        self._timers: dict[tuple[str, str], Any] = {}
        self._counters: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value
                break
        request_id = request_id_from(incoming)
        echo = (b"x-request-id", request_id.encode())
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 500  # unless an answer starts (an exception escaping every handler)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echo]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            self._observe(scope, status, seconds)
            REQUEST_ID.reset(token)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or UNMATCHED
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        key = (method, path)
        timer = self._timers.get(key)
        if timer is None:
            timer = self._timers[key] = REQUEST_SECONDS.labels(method, path)
        timer.observe(seconds)
        counter = self._counters.get((method, path, status))
        if counter is None:
            counter = self._counters[(method, path, status)] = REQUESTS.labels(
                method, path, str(status)
            )
        counter.inc()
        if self.access_log:
            access_logger.info(
                "%s %s %d",
                method,
                scope["path"],
                status,
                extra={
                    "method": method,
                    "path": scope["path"],
                    "route": path,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "client": (scope.get("client") or ("",))[0],
                },
            )
