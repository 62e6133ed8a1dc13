"""PostgreSQL stopped and started under load, the service running throughout: while the
database is away (stopped, crashed, recovering, not yet accepting connections) every answer is
a 2xx or a JSON 503 storage_unavailable with Retry-After, never a 500; once it is back the
service answers 2xx again without a restart, and every acknowledged event is stored."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest
from sqlalchemy import select

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.domain.tables import Event
from app.main import create_app
from app.migrate import upgrade
from tests.factories import basic_auth, create_site
from tests.faults.helpers import served
from tests.faults.pg_cluster import ThrowawayCluster
from tests.helpers import eventually

TIMEOUT = 20.0  # each wait for the service to do something, at most


@pytest.fixture
async def cluster(database_url: str) -> AsyncIterator[ThrowawayCluster]:
    if database_url.startswith("sqlite"):
        pytest.skip("stops and starts a PostgreSQL server: PostgreSQL only")
    pg = ThrowawayCluster()
    try:
        await asyncio.to_thread(pg.init)
        await asyncio.to_thread(pg.start)
        admin = await asyncpg.connect(pg.admin_dsn)
        await admin.execute("CREATE DATABASE leadheat")
        await admin.close()
        await asyncio.to_thread(upgrade, pg.url)
        yield pg
    finally:
        await asyncio.to_thread(pg.destroy)


@dataclass
class Load:
    """Ingestion batches and management requests sent continuously, every answer checked."""

    url: str
    write_key: str
    secret_key: str
    answers: list[tuple[float, str, int]] = field(default_factory=list)  # (when, kind, status)
    wrong: list[str] = field(default_factory=list)
    acknowledged: set[str] = field(default_factory=set)
    stopping: bool = False

    def check(self, kind: str, r: httpx.Response) -> None:
        self.answers.append((time.monotonic(), kind, r.status_code))
        if r.is_success:
            return
        json = r.headers.get("content-type") == "application/json"
        code = r.json().get("code") if json else None
        if r.status_code != 503 or code != "storage_unavailable" or "retry-after" not in r.headers:
            self.wrong.append(f"{kind}: {r.status_code} {r.text[:300]}")

    async def ingest(self, name: str) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=TIMEOUT) as client:
            for n in range(1_000_000):
                if self.stopping:
                    return
                ids = [f"{name}-{n}-{i}" for i in range(5)]
                batch = [
                    {"type": "track", "event": "Product Viewed", "anonymousId": f"{name}-{n}",
                     "messageId": message_id}
                    for message_id in ids
                ]  # fmt: skip
                r = await client.post(
                    "/v1/batch", auth=basic_auth(self.write_key), json={"batch": batch}
                )
                self.check("ingestion", r)
                if r.status_code == 200:
                    self.acknowledged.update(ids)

    async def manage(self) -> None:
        headers = {"Authorization": f"Bearer {self.secret_key}"}
        hook = {"url": "https://hooks.example.com/leadheat"}
        async with httpx.AsyncClient(base_url=self.url, timeout=TIMEOUT, headers=headers) as c:
            while not self.stopping:
                self.check("management", await c.get("/v1/leads", params={"limit": 5}))
                self.check("management", await c.post("/v1/webhooks", json=hook))

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        async def met() -> bool:
            assert not self.wrong, self.wrong[:5]
            return condition()

        met.__doc__ = what
        await eventually(met, TIMEOUT)

    def seen(self, since: float, status: Callable[[int], bool], kinds: int = 2) -> bool:
        """Whether both kinds (ingestion, management) were answered so since `since`."""
        found = {kind for when, kind, code in self.answers if when >= since and status(code)}
        return len(found) >= kinds


def ok(status: int) -> bool:
    return 200 <= status < 300


def unavailable(status: int) -> bool:
    return status == 503


@pytest.mark.parametrize("stop_mode", ["fast", "immediate"])
async def test_the_service_rides_out_a_database_restart(cluster, stop_mode):
    settings = Settings(database_url=cluster.url, create_demo_site=False, run_background=False)
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            site = await create_site(session)
        with served(create_app(settings)) as (host, port):
            load = Load(f"http://{host}:{port}", site.write_key, site.secret_key)
            tasks = [asyncio.create_task(load.ingest(f"w{i}")) for i in range(2)]
            tasks.append(asyncio.create_task(load.manage()))
            try:
                await restart_under_load(cluster, load, stop_mode)
            finally:
                load.stopping = True
                await asyncio.gather(*tasks)
        assert not load.wrong, load.wrong[:5]
        async with make_sessionmaker(engine)() as session:
            stored = set(await session.scalars(select(Event.message_id)))
        assert load.acknowledged
        assert load.acknowledged <= stored, sorted(load.acknowledged - stored)[:10]
    finally:
        await engine.dispose()


async def restart_under_load(cluster: ThrowawayCluster, load: Load, stop_mode: str) -> None:
    await load.until(lambda: load.seen(0, ok), "2xx before the stop")
    stopped = time.monotonic()
    await asyncio.to_thread(cluster.stop, stop_mode)
    await load.until(lambda: load.seen(stopped, unavailable), "503 while stopped")
    if stop_mode == "immediate":
        # Crash recovery, then held "not accepting connections" (57P03, as while starting up)
        # until promoted: the service answers 503 meanwhile, ingestion included.
        await asyncio.to_thread(cluster.start, wait=False, standby=True)
        held = await not_accepting_connections(cluster)
        await load.until(lambda: load.seen(held, unavailable), "503 while starting up")
        promoted = time.monotonic()
        await asyncio.to_thread(cluster.promote)
        await load.until(lambda: load.seen(promoted, ok), "2xx after the restart")
    else:
        starting = time.monotonic()
        await asyncio.to_thread(cluster.start, wait=False)  # hit it while it starts
        await load.until(lambda: load.seen(starting, ok), "2xx after the restart")


async def not_accepting_connections(cluster: ThrowawayCluster) -> float:
    """Once the server is up as a standby, refusing connections as "not accepting
    connections" (57P03): when it was first seen so. "Starting up" (57P03 too) comes before
    its recovery has begun, when it cannot be promoted yet."""

    async def refusing() -> float | None:
        """the standby came up"""
        try:
            conn = await asyncpg.connect(cluster.admin_dsn, timeout=2)
        except asyncpg.CannotConnectNowError as exc:
            return time.monotonic() if "not accepting connections" in str(exc) else None
        except OSError:
            return None  # not listening yet
        await conn.close()
        raise AssertionError("the standby accepted a connection before its promotion")

    return await eventually(refusing, TIMEOUT)
