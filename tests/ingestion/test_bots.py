"""Known crawlers (by the CrawlerDetect patterns) are stored and counted, never scored."""

from sqlalchemy import func, select

from app.domain.tables import Lead
from tests.factories import basic_auth, stored_events, track

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Safari/537.36"
)


async def test_crawler_events_are_counted_and_stored_without_a_lead(client, session, site):
    r = await client.post(
        "/v1/batch",
        auth=basic_auth(site.write_key),
        json={
            "batch": [
                track("bot", "Product Viewed", "b1", context={"userAgent": GOOGLEBOT}),
                track("human", "Product Viewed", "h1", context={"userAgent": CHROME}),
            ]
        },
    )
    assert r.json()["accepted"] == 2
    assert r.json()["bots"] == 1
    events = {e.message_id: e for e in await stored_events(session, site.site.id)}
    assert events["b1"].is_bot
    assert events["b1"].lead_id is None
    assert not events["h1"].is_bot
    assert events["h1"].lead_id is not None
    leads = await session.scalar(select(func.count()).select_from(Lead))
    assert leads == 1
