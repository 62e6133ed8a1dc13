"""A batch of leads' stored events as replays read them (app.scoring.histories): the portable
SQLAlchemy query's rows (each lead's events in time order, bots left out, a page url whatever
JSON it was sent as), and the scoring events made from them; on PostgreSQL through asyncpg
directly, as the records arrive (`scoring_histories`), which must give exactly what
`stored_scoring_events` makes of those rows. The same for the leads a preview reads
(`rule_sets.preview_profiles`)."""

import uuid
from datetime import timedelta

from sqlalchemy import select

from app.domain.tables import Lead, LeadIdentity
from app.scoring import histories as histories_module
from app.scoring import rule_sets
from app.scoring.histories import scoring_histories
from app.scoring.scorer import stored_scoring_events
from tests.factories import at, send, track


def identify(anonymous_id: str, email: str, **fields: object) -> dict:
    return {"type": "identify", "anonymousId": anonymous_id, "traits": {"email": email}, **fields}


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
    gap = timedelta(minutes=30)
    async with db_engine.connect() as conn:
        made = await scoring_histories(conn, site.site.id, [ids["a"], ids["b"], ids["b"]], gap)
        read = await histories_module._histories(conn, site.site.id, [ids["a"], ids["b"]])

    assert made == {lead: stored_scoring_events(rows, gap) for lead, rows in read.items()}
    assert set(read) == {ids["a"], ids["b"]}
    a = read[ids["a"]]
    assert [row[0] for row in a] == ["a1", "a2", "a3", "a4", "a5"]  # a tie kept in arrival order
    assert [row[4] for row in a] == [None, {"page": {"url": 42}}, {"page": page}, None, None]
    assert a[0][1:4] == ("track", "Product Viewed", {"price": 120})
    assert a[0][5].isoformat() == at(1)
    assert [row[0] for row in read[ids["b"]]] == ["b1"]  # the crawler's event is not scored
    assert read[ids["b"]][0][4] == {"page": {"url": ["x"]}}


async def test_scoring_events_made_as_read_are_those_of_the_rows(client, db_engine, session, site):
    """Visits split by the gap, ties in arrival order, and every way a page url can be sent:
    in the context as text, empty, as other JSON (42, false, a list), or only in the
    properties."""
    gap = timedelta(minutes=30)
    await send(
        client,
        site,
        track("a", "Product Viewed", "a1", timestamp=at(0), context={"page": {"url": "/p/1"}}),
        track(
            "a",
            "Cart Viewed",
            "a2",
            timestamp=at(0),
            context={"page": {"url": ""}},
            properties={"url": "/cart"},
        ),  # fmt: skip
        track("a", "Cart Viewed", "a3", timestamp=at(5), context={"page": {"url": 42}}),
        track(
            "a",
            "Cart Viewed",
            "a4",
            timestamp=at(90),
            context={"page": {"url": False}},
            properties={"url": "/again"},
        ),  # fmt: skip
        track("a", "Product Viewed", "a5", timestamp=at(91), properties={"url": ["no"]}),
        {"type": "page", "anonymousId": "a", "messageId": "a6", "timestamp": at(200)},
        track("b", "Order Completed", "b1", timestamp=at(3), properties={"revenue": 10}),
        identify("b", "b@example.com", messageId="b2", timestamp=at(400)),
    )
    ids = await lead_ids(session, site)
    wanted = [ids["a"], ids["b"]]
    async with db_engine.connect() as conn:
        made = await scoring_histories(conn, site.site.id, wanted, gap)
        rows = await histories_module._histories(conn, site.site.id, wanted)

    assert made == {lead: stored_scoring_events(rows[lead], gap) for lead in wanted}
    a = made[ids["a"]]
    assert [e.visit for e in a] == [1, 1, 1, 2, 2, 3]
    assert [e.url for e in a] == ["/p/1", "/cart", None, "/again", None, None]
    assert [e.kind for e in made[ids["b"]]] == ["Order Completed", "identify"]


async def test_a_previews_leads_read_directly_are_those_of_the_portable_query(
    client, db_engine, site
):
    await send(
        client,
        site,
        *(track(f"v{i}", "Product Viewed", timestamp=at(i)) for i in range(7)),
        identify("v3", "v3@example.com", timestamp=at(20), context={"location": {"city": "Lyon"}}),
    )
    async with db_engine.connect() as conn:
        everyone = await rule_sets.preview_profiles(
            conn, site.site.id, after=None, upto=None, limit=100
        )
        ids = [p["id"] for p in everyone]
        middle = await rule_sets.preview_profiles(
            conn, site.site.id, after=ids[1], upto=ids[5], limit=3
        )
        query = select(*rule_sets._PREVIEW_COLUMNS).where(rule_sets.live_leads(site.site.id))
        portable = [dict(r) for r in (await conn.execute(query.order_by(Lead.id))).mappings()]

    assert len(everyone) == 7
    assert ids == sorted(ids)
    assert all(isinstance(i, uuid.UUID) for i in ids)
    assert everyone == portable
    assert [p["id"] for p in middle] == ids[2:5]
    assert any(p["city"] == "Lyon" for p in everyone)
