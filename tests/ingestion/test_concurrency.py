"""Many concurrent requests, through two replicas sharing one database: nothing is lost,
nothing is counted twice, and every id ends on exactly one lead."""

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, text

from app.db import utcnow
from app.domain.events import IngestEvent
from app.domain.tables import Event, Lead, LeadIdentity
from app.ingestion import bulk
from app.ingestion.bulk import group_transaction, prepare_flusher
from app.ingestion.parsing import validate_event
from app.ingestion.store import RetryGroup, Submission, store_group
from app.main import create_app
from tests.factories import basic_auth, create_site
from tests.helpers import eventually


@asynccontextmanager
async def two_replicas(settings) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two instances of the service on one database, a client for each."""
    replicas = [create_app(settings), create_app(settings)]
    async with (
        replicas[0].router.lifespan_context(replicas[0]),
        replicas[1].router.lifespan_context(replicas[1]),
    ):
        clients = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://r")
            for a in replicas
        ]
        try:
            yield clients
        finally:
            for c in clients:
                await c.aclose()


# PostgreSQL stores small groups with INSERT and large ones with COPY: both, under races.
@pytest.fixture(params=["insert", "copy"])
def write_path(request, monkeypatch):
    if request.param == "copy":
        monkeypatch.setattr(bulk, "COPY_MIN_ROWS", 0)
    return request.param


async def test_two_replicas_ingesting_the_same_visitors_concurrently(settings, session, write_path):
    site = await create_site(session)
    rng = random.Random(7)
    visitors = [f"v{i}" for i in range(12)]
    sent = 0
    async with two_replicas(settings) as clients:

        async def send(n: int) -> httpx.Response:
            visitor = rng.choice(visitors)
            if n % 10 == 0:  # some visitors log in: merges race with page views
                body = {"type": "identify", "anonymousId": visitor, "userId": f"u{n % 3}"}
            else:
                body = {"type": "page", "anonymousId": visitor, "messageId": f"m{n}"}
            return await clients[n % 2].post(
                "/v1/batch", auth=basic_auth(site.write_key), json={"batch": [body]}
            )

        responses = await asyncio.gather(*(send(n) for n in range(200)))
        # A retried request (same messageIds) through the other replica is a duplicate.
        retry = await clients[1].post(
            "/v1/batch",
            auth=basic_auth(site.write_key),
            json={"batch": [{"type": "page", "anonymousId": "v1", "messageId": "m1"}]},
        )

    assert all(r.status_code == 200 for r in responses)
    sent = sum(r.json()["accepted"] for r in responses)
    assert sent == 200
    assert retry.json()["duplicates"] == 1

    session.expire_all()
    assert await session.scalar(select(func.count()).select_from(Event)) == 200
    # Every identity points at a live (not merged) lead, and the counts add up.
    dangling = await session.scalar(
        select(func.count())
        .select_from(LeadIdentity)
        .join(Lead, Lead.id == LeadIdentity.lead_id)
        .where(Lead.merged_into_id.is_not(None))
    )
    assert dangling == 0
    live = list(await session.scalars(select(Lead).where(Lead.merged_into_id.is_(None))))
    assert sum(lead.events_count for lead in live) == 200
    pages = await session.scalar(
        select(func.count()).select_from(Event).where(Event.type == "page")
    )
    assert sum(lead.page_views for lead in live) == pages
    events_on_merged = await session.scalar(
        select(func.count())
        .select_from(Event)
        .join(Lead, Lead.id == Event.lead_id)
        .where(Lead.merged_into_id.is_not(None))
    )
    assert events_on_merged == 0


async def test_the_same_events_sent_through_two_replicas_at_once_are_stored_once(
    settings, session, write_path
):
    """Clients retry: identical batches arrive at two replicas at the same moment. Both look
    for the messageIds, neither finds them; the second insert meets the first on the unique
    index, and its group is retried, finding them as duplicates."""
    site = await create_site(session)
    batches = [
        [
            {"type": "track", "event": "Product Viewed", "anonymousId": f"v{b}-{i % 3}",
             "messageId": f"b{b}-m{i}"}
            for i in range(60)
        ]
        for b in range(4)
    ]  # fmt: skip
    async with two_replicas(settings) as clients:
        responses = await asyncio.gather(
            *(
                clients[copy % 2].post(
                    "/v1/batch", auth=basic_auth(site.write_key), json={"batch": batch}
                )
                for batch in batches
                for copy in range(4)
            )
        )

    assert all(r.status_code == 200 for r in responses)
    assert sum(r.json()["accepted"] for r in responses) == 240
    assert sum(r.json()["duplicates"] for r in responses) == 3 * 240
    session.expire_all()
    assert await session.scalar(select(func.count()).select_from(Event)) == 240
    leads = list(await session.scalars(select(Lead)))
    assert len(leads) == 12
    assert sorted(lead.events_count for lead in leads) == [20] * 12


def _crawler_events(prefix: str, count: int) -> list[IngestEvent]:
    # A crawler's events: stored, but with no identity or lead to lock, so that the only
    # thing the two transactions meet on is the events' unique index.
    ua = {"userAgent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}
    out = []
    for i in range(count):
        event = validate_event(
            {"type": "page", "anonymousId": f"{prefix}-v", "messageId": f"{prefix}-{i}",
             "context": ua},
            index=i, forced_type=None, batch_sent_at=None, received_at=utcnow(),
            max_event_bytes=32 * 1024,
        )  # fmt: skip
        assert isinstance(event, IngestEvent)
        assert event.is_bot
        out.append(event)
    return out


async def test_an_event_stored_by_a_concurrent_transaction_makes_the_group_retry(
    settings, session, db_engine, write_path
):
    """The race behind the test above, step by step: both groups find the events new; the
    second one's insert waits on the first's uncommitted rows, then fails on the unique index
    once they commit, and store_group asks for a retry instead of losing or doubling them."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: the race cannot happen")
    site = await create_site(session)

    def group() -> list[Submission]:
        return [Submission(site.site.id, _crawler_events("race", 60))]

    async def store(conn, subs):
        await store_group(conn, subs, visit_timeout=timedelta(minutes=30), store_bots=True)

    async def store_in_transaction(conn, subs):
        async with group_transaction(conn):
            await store(conn, subs)

    async with db_engine.connect() as first, db_engine.connect() as second:
        for conn in (first, second):
            await prepare_flusher(conn)  # as the pipeline's flushers
        first_transaction = group_transaction(first)
        await first_transaction.__aenter__()
        await store(first, group())  # stored, not committed yet
        blocked = asyncio.create_task(store_in_transaction(second, group()))

        async def waits_on_a_lock() -> bool:
            """the second transaction waits on a lock"""
            waiting = await session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            return bool(waiting)

        await eventually(waits_on_a_lock)  # on the unique index, for the first transaction
        assert not blocked.done()
        await first_transaction.__aexit__(None, None, None)  # commits
        with pytest.raises(RetryGroup):
            await blocked  # and rolled back
        retried = group()
        await store_in_transaction(second, retried)  # the retry sees them all as duplicates
    assert retried[0].outcomes == ["duplicate"] * 60
    session.expire_all()
    assert await session.scalar(select(func.count()).select_from(Event)) == 60
