"""Polling the list cheaply: a weak ETag for what a page shows, 304s, and updated_since."""

from tests.factories import bearer, send, without_ladder
from tests.leads.helpers import cold, event, hot, id_of, list_leads, page


async def get(client, site, etag=None, **params):
    headers = {**bearer(site.secret_key), **({"If-None-Match": etag} if etag else {})}
    return await client.get("/v1/leads", headers=headers, params=params)


async def test_an_unchanged_page_is_304_with_no_body(client, site):
    await without_ladder(client, site)  # nothing changes the page between the two reads
    await send(client, site, *cold("a"), *hot("b"))
    first = await get(client, site)
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    again = await get(client, site, etag)
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert (await get(client, site, f'"other", {etag}')).status_code == 304
    assert (await get(client, site, etag.removeprefix("W/"))).status_code == 304


async def test_a_new_event_changes_the_etag(client, site):
    await send(client, site, *cold("a"), *hot("b"))
    etag = (await get(client, site)).headers["etag"]
    await send(client, site, page("a", 5, "https://shop.example/ovens"))
    r = await get(client, site, etag)
    assert r.status_code == 200
    assert r.headers["etag"] != etag
    assert "https://shop.example/ovens" in [lead["last_url"] for lead in r.json()["data"]]


async def test_a_new_lead_and_a_status_change_change_the_etag(client, session, site):
    await send(client, site, *cold("a"))
    etag = (await get(client, site)).headers["etag"]
    await send(client, site, *cold("b", 1))
    r = await get(client, site, etag)
    assert r.status_code == 200
    assert len(r.json()["data"]) == 2
    etag = r.headers["etag"]
    a = await id_of(session, site, "a")
    await client.patch(
        f"/v1/leads/{a}", headers=bearer(site.secret_key), json={"status": "qualified"}
    )
    r = await get(client, site, etag)
    assert r.status_code == 200
    assert {lead["status"] for lead in r.json()["data"]} == {"new", "qualified"}


async def test_the_etag_depends_on_the_query(client, site):
    await send(client, site, *cold("a"), *hot("b"))
    etag = (await get(client, site)).headers["etag"]
    assert (await get(client, site, etag, temperature="hot")).status_code == 200
    assert (await get(client, site, etag, sort="recent")).status_code == 200
    assert (await get(client, site, etag, limit=1)).status_code == 200


async def test_updated_since_returns_only_leads_changed_after_it(client, session, site):
    await send(client, site, *cold("a"), *cold("b", 1), *cold("c", 2))
    data = (await list_leads(client, site))["data"]
    since = max(lead["updated_at"] for lead in data)
    assert (await list_leads(client, site, updated_since=since))["data"] == []

    await send(client, site, event("b", "Product Viewed", 10, product_id="p", category="tv"))
    changed = (await list_leads(client, site, updated_since=since))["data"]
    assert [lead["id"] for lead in changed] == [await id_of(session, site, "b")]
    assert changed[0]["updated_at"] > since
    assert changed[0]["top_interests"] == [{"category": "tv", "views": 1}]
