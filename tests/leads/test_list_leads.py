"""Listing leads: hottest or most recent first, filtered on the stored columns."""

import pytest

from tests.factories import bearer, lead_by_anonymous_id, send
from tests.leads.helpers import cold, event, hot, id_of, identify, lead_ids, list_leads, page, warm


async def test_hottest_first_by_default(client, session, site):
    await send(client, site, *cold("c"), *warm("w"), *hot("h"))
    data = (await list_leads(client, site))["data"]
    assert [lead["temperature"] for lead in data] == ["hot", "warm", "cold"]
    scores = [lead["score"] for lead in data]
    assert scores == sorted(scores, reverse=True)
    assert [lead["id"] for lead in data] == [await id_of(session, site, v) for v in ("h", "w", "c")]


async def test_recent_sort_puts_the_last_seen_first(client, session, site):
    await send(client, site, *hot("early", 0), *cold("late", 500), *warm("middle", 100))
    data = (await list_leads(client, site, sort="recent"))["data"]
    assert [lead["id"] for lead in data] == [
        await id_of(session, site, v) for v in ("late", "middle", "early")
    ]
    seen = [lead["last_seen_at"] for lead in data]
    assert seen == sorted(seen, reverse=True)


async def test_a_lead_in_the_list_shows_who_how_hot_and_what_they_look_at(client, session, site):
    await send(
        client,
        site,
        identify("v", 0, email="olga@example.com", city="Kazan", country="Russia"),
        event("v", "Product Viewed", 1, product_id="f1", category="fridges", price=500),
        event("v", "Product Viewed", 2, product_id="f2", category="fridges"),
        event("v", "Product Viewed", 3, product_id="o1", category="ovens"),
        event("v", "Product Added", 4, product_id="f1", price=500, quantity=2),
        event("v", "Page Engaged", 5, engaged_seconds=90),
        page("v", 6, "https://shop.example/fridges/f1"),
    )
    [lead] = (await list_leads(client, site))["data"]
    stored = await lead_by_anonymous_id(session, site.site.id, "v")
    assert lead == {
        "id": str(stored.id),
        "score": stored.score,
        "temperature": stored.temperature,
        "status": "new",
        "lost_reason": None,
        "identified": True,
        "contacts": {"email": "olga@example.com"},
        "city": "Kazan",
        "country": "Russia",
        "top_interests": [
            {"category": "fridges", "views": 2},
            {"category": "ovens", "views": 1},
        ],
        "last_seen_at": "2026-10-01T10:06:00Z",
        "last_url": "https://shop.example/fridges/f1",
        "visits": 1,
        "time_on_site_seconds": 90.0,
        "cart": {"item_count": 2, "value": 1000},
        "became_hot_at": None,
        "contact_by": None,
        "first_contacted_at": None,
        "updated_at": stored.updated_at.isoformat().replace("+00:00", "Z"),
        "rule_set_version": 1,
        "owner": None,  # nobody in the team to own it
        "owner_assigned_at": None,
        "at_risk": None,
    }


async def test_merged_leads_are_not_listed(client, session, site):
    await send(client, site, *cold("phone"), *cold("laptop", 5))
    assert len(await lead_ids(client, site)) == 2
    await send(
        client,
        site,
        {
            "type": "identify",
            "anonymousId": "phone",
            "userId": "u1",
            "timestamp": "2026-10-01T11:00:00Z",
        },
        {
            "type": "identify",
            "anonymousId": "laptop",
            "userId": "u1",
            "timestamp": "2026-10-01T11:01:00Z",
        },
    )
    assert len(await lead_ids(client, site)) == 1


@pytest.mark.parametrize("param", [["warm", "hot"], "warm,hot", "hot, warm"])
async def test_filter_by_temperature_repeated_or_as_a_comma_list(client, session, site, param):
    await send(client, site, *cold("c"), *warm("w"), *hot("h"))
    ids = await lead_ids(client, site, temperature=param)
    assert ids == [await id_of(session, site, v) for v in ("h", "w")]
    assert await lead_ids(client, site, temperature="cold") == [await id_of(session, site, "c")]


async def test_filter_by_min_score(client, session, site):
    await send(client, site, *cold("c"), *warm("w"), *hot("h"))
    data = (await list_leads(client, site))["data"]
    warm_score = next(lead["score"] for lead in data if lead["temperature"] == "warm")
    ids = await lead_ids(client, site, min_score=warm_score)
    assert ids == [await id_of(session, site, v) for v in ("h", "w")]
    assert await lead_ids(client, site, min_score=1000) == []


async def test_filter_by_interest_reads_the_json_interests(client, session, site):
    await send(
        client,
        site,
        *warm("fridge-fan", category="fridges"),
        *warm("oven-fan", category="ovens"),
        event("both", "Product Viewed", 0, product_id="x", category="ovens"),
        event("both", "Product Viewed", 1, product_id="y", category="fridges"),
        event("odd", "Product Viewed", 1, product_id="z", category='tv "smart" / 4k'),
        *cold("nobody"),
    )
    fridges = set(await lead_ids(client, site, interest="fridges"))
    assert fridges == {await id_of(session, site, v) for v in ("fridge-fan", "both")}
    ovens = set(await lead_ids(client, site, interest="ovens"))
    assert ovens == {await id_of(session, site, v) for v in ("oven-fan", "both")}
    assert await lead_ids(client, site, interest='tv "smart" / 4k') == [
        await id_of(session, site, "odd")
    ]
    assert await lead_ids(client, site, interest="Fridges") == []
    assert await lead_ids(client, site, interest="kettles") == []


async def test_filter_by_city_ignores_case(client, session, site):
    await send(
        client,
        site,
        identify("k", 0, city="Kazan"),
        identify("m", 0, city="Moscow"),
        identify("r", 0, city="Казань"),
        *cold("nowhere"),
    )
    kazan = await id_of(session, site, "k")
    for spelling in ("Kazan", "kazan", "KAZAN"):
        assert await lead_ids(client, site, city=spelling) == [kazan]
    for spelling in ("Казань", "казань", "КАЗАНЬ"):
        assert await lead_ids(client, site, city=spelling) == [await id_of(session, site, "r")]
    assert await lead_ids(client, site, city="Kaz") == []


async def test_filter_by_status(client, session, site):
    await send(client, site, *cold("a"), *cold("b", 1), *cold("c", 2))
    a, b = await id_of(session, site, "a"), await id_of(session, site, "b")
    r = await client.patch(
        f"/v1/leads/{a}", headers=bearer(site.secret_key), json={"status": "contacted"}
    )
    assert r.status_code == 200
    r = await client.patch(
        f"/v1/leads/{b}",
        headers=bearer(site.secret_key),
        json={"status": "lost", "lost_reason": "spam"},
    )
    assert r.status_code == 200
    assert await lead_ids(client, site, status="contacted") == [a]
    assert await lead_ids(client, site, status="lost") == [b]
    assert set(await lead_ids(client, site, status="contacted,lost")) == {a, b}
    assert await lead_ids(client, site, status="new") == [await id_of(session, site, "c")]


async def test_filter_by_identified(client, session, site):
    await send(client, site, *cold("anon"), identify("known", 0, phone="+7 900"))
    assert await lead_ids(client, site, identified="true") == [await id_of(session, site, "known")]
    assert await lead_ids(client, site, identified="false") == [await id_of(session, site, "anon")]


async def test_filters_combine(client, session, site):
    await send(
        client,
        site,
        *hot("hot-kazan"),
        identify("hot-kazan", 1, city="Kazan"),
        *hot("hot-moscow"),
        identify("hot-moscow", 1, city="Moscow"),
        *warm("warm-kazan"),
        identify("warm-kazan", 200, city="Kazan"),
    )
    assert await lead_ids(client, site, temperature="hot", city="kazan") == [
        await id_of(session, site, "hot-kazan")
    ]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"temperature": "boiling"}, "temperature"),
        ({"temperature": "hot,boiling"}, "temperature"),
        ({"status": "maybe"}, "status"),
        ({"sort": "name"}, "sort"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"min_score": -1}, "min_score"),
        ({"min_score": "high"}, "min_score"),
        ({"identified": "perhaps"}, "identified"),
        ({"updated_since": "yesterday"}, "updated_since"),
        ({"temprature": "hot"}, "temprature"),
    ],
)
async def test_unknown_query_values_are_422(client, site, params, name):
    r = await client.get("/v1/leads", headers=bearer(site.secret_key), params=params)
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "validation_error"
    assert body["details"][0]["loc"] == ["query", name]
