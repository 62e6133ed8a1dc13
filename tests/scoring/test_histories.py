"""A batch of leads' stored events as replays read them (app.scoring.histories): on PostgreSQL
through asyncpg directly, which must give exactly the rows of the portable SQLAlchemy query:
each lead's events in time order, bots left out, and a page url whatever JSON it was sent as."""

import uuid

from sqlalchemy import select

from app.domain.tables import Lead, LeadIdentity
from app.scoring import histories as histories_module
from app.scoring.histories import histories
from tests.factories import at, send, track

BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


async def lead_ids(session, site) -> dict[str, uuid.UUID]:
    rows = await session.execute(
        select(LeadIdentity.value, Lead.id)
        .join(Lead, Lead.id == LeadIdentity.lead_id)
        .where(LeadIdentity.site_id == site.site.id, LeadIdentity.kind == "anonymous")
    )
    return dict(rows.all())


async def test_rows_are_each_leads_events_in_time_order_with_the_url_as_sent(
    client, session, db_engine, site
):
    page = {"url": "https://shop.example/fridges?id=7"}
    await send(
        client,
        site,
        track("a", "Product Viewed", "a3", timestamp=at(3), context={"page": page}),
        track("a", "Product Viewed", "a1", timestamp=at(1), properties={"price": 120}),
        track("a", "Cart Viewed", "a2", timestamp=at(1), context={"page": {"url": 42}}),
        track("a", "Cart Viewed", "a4", timestamp=at(4), context={"page": {"url": None}}),
        track("a", "Cart Viewed", "a5", timestamp=at(5), context={"page": "not an object"}),
        track("b", "Product Viewed", "b1", timestamp=at(2), context={"page": {"url": ["x"]}}),
        track("b", "Product Viewed", "bot", timestamp=at(2), context={"userAgent": BOT}),
    )
    ids = await lead_ids(session, site)
    async with db_engine.connect() as conn:
        read = await histories(conn, site.site.id, [ids["a"], ids["b"], ids["b"]])
        portable = await histories_module._histories(conn, site.site.id, [ids["a"], ids["b"]])

    assert read == portable
    assert set(read) == {ids["a"], ids["b"]}
    a = read[ids["a"]]
    assert [row[0] for row in a] == ["a1", "a2", "a3", "a4", "a5"]  # a tie kept in arrival order
    assert [row[4] for row in a] == [None, {"page": {"url": 42}}, {"page": page}, None, None]
    assert a[0][1:4] == ("track", "Product Viewed", {"price": 120})
    assert a[0][5].isoformat() == at(1)
    assert [row[0] for row in read[ids["b"]]] == ["b1"]  # the crawler's event is not scored
    assert read[ids["b"]][0][4] == {"page": {"url": ["x"]}}
