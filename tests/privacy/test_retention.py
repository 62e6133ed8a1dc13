"""Retention: the loop deletes the events stored longer ago than the retention, in small
batches, and leaves lead profiles and scores as they were."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app.config import PrivacySettings, Settings
from app.db import utcnow
from app.domain.tables import Event, Lead
from app.leases import Lease
from app.privacy import retention
from tests.factories import at, lead_by_anonymous_id, send, track


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Batches of two: a pass over five old events takes several transactions.
    privacy = PrivacySettings(event_retention_days=30, retention_batch_events=2)
    return settings.model_copy(update={"run_background": False, "privacy": privacy})


async def events_of(session, anonymous_id: str) -> int:
    query = select(func.count()).select_from(Event).where(Event.anonymous_id == anonymous_id)
    return int(await session.scalar(query) or 0)


async def test_a_loop_tick_prunes_old_events_and_keeps_the_lead(app, client, session, site):
    await send(
        client,
        site,
        *(track("old", "Product Viewed", properties={"sku": f"s{i}"}) for i in range(4)),
        track("old", "Contact Requested"),
    )
    await send(client, site, track("recent", "Product Viewed"), track("recent", "Page Engaged"))
    old = await lead_by_anonymous_id(session, site.site.id, "old")
    profile = (old.events_count, old.score, old.temperature, old.visits, dict(old.interests))
    # The first visitor's events were stored 31 days ago.
    await session.execute(
        update(Event)
        .where(Event.anonymous_id == "old")
        .values(received_at=utcnow() - timedelta(days=31))
    )

    await retention.retention_loop(app.state.background.context, asyncio.Event(), iterations=1)

    assert await events_of(session, "old") == 0
    assert await events_of(session, "recent") == 2
    kept = await lead_by_anonymous_id(session, site.site.id, "old")
    assert (kept.events_count, kept.score, kept.temperature, kept.visits, kept.interests) == (
        profile
    )
    # The lease was handed back when the loop stopped.
    assert await session.scalar(select(func.count()).select_from(Lease)) == 0


async def test_another_process_holding_the_lease_prunes_instead(app, client, session, site):
    await send(client, site, track("old", "Product Viewed"))
    await session.execute(update(Event).values(received_at=utcnow() - timedelta(days=31)))
    session.add(
        Lease(name=retention.LEASE, holder="elsewhere", until=utcnow() + timedelta(hours=1))
    )
    await session.flush()

    await retention.retention_loop(app.state.background.context, asyncio.Event(), iterations=1)

    assert await events_of(session, "old") == 1


async def test_without_a_retention_nothing_is_pruned(client, session, site, db_engine):
    await send(client, site, track("old", "Product Viewed"))
    await session.execute(update(Event).values(received_at=utcnow() - timedelta(days=3650)))
    assert await retention.prune_events(db_engine, PrivacySettings(), utcnow()) == 0
    assert await events_of(session, "old") == 1
    assert await session.scalar(select(func.count()).select_from(Lead)) == 1


async def test_a_late_event_after_pruning_keeps_what_the_pruned_events_counted(
    app, client, session, site
):
    """A late event (older than the lead's last) makes ingestion rebuild the lead from its
    stored events; with part of them pruned that would forget their visits and orders, so
    the lead takes the late event as it is instead."""
    await send(
        client,
        site,
        track("v", "Order Completed", timestamp=at(0), properties={"revenue": 500}),
        track("v", "Product Viewed", timestamp=at(days=40), properties={"sku": "a"}),
        track("v", "Product Viewed", timestamp=at(days=50), properties={"sku": "b"}),
    )
    await session.execute(
        update(Event)
        .where(Event.name == "Order Completed")
        .values(received_at=utcnow() - timedelta(days=31))
    )
    await retention.retention_loop(app.state.background.context, asyncio.Event(), iterations=1)
    assert await events_of(session, "v") == 2

    await send(client, site, track("v", "Product Viewed", timestamp=at(days=45)))  # late

    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    assert (lead.events_count, lead.orders, lead.revenue) == (4, 1, 500)


async def test_rows_in_use_are_skipped_not_waited_for(client, session, site, db_engine, settings):
    """PostgreSQL: an event row another transaction holds (a merge moving a lead's events) is
    left for the next pass; the pass deletes the others without waiting for it."""
    if db_engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite has one writer)")
    await send(client, site, *(track("old", "Product Viewed", f"m{i}") for i in range(3)))
    await session.execute(update(Event).values(received_at=utcnow() - timedelta(days=31)))
    async with db_engine.connect() as other:
        await other.execute(select(Event.id).where(Event.message_id == "m0").with_for_update())
        pruning = retention.prune_events(db_engine, settings.privacy, utcnow())
        assert await asyncio.wait_for(pruning, timeout=60) == 2  # a guard, not a measure
        await other.rollback()
    assert set(await session.scalars(select(Event.message_id))) == {"m0"}
