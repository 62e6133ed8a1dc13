"""Many concurrent requests, through two replicas sharing one database: nothing is lost,
nothing is counted twice, and every id ends on exactly one lead."""

import asyncio
import random

import httpx
from sqlalchemy import func, select

from app.leads.models import Event, Lead, LeadIdentity
from app.main import create_app
from tests.factories import basic_auth, create_site


async def test_two_replicas_ingesting_the_same_visitors_concurrently(settings, session):
    site = await create_site(session)
    replicas = [create_app(settings), create_app(settings)]
    rng = random.Random(7)
    visitors = [f"v{i}" for i in range(12)]
    sent = 0
    async with (
        replicas[0].router.lifespan_context(replicas[0]),
        replicas[1].router.lifespan_context(replicas[1]),
    ):
        clients = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://r")
            for a in replicas
        ]

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
        for c in clients:
            await c.aclose()

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
