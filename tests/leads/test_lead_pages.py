"""Keyset pages: every lead exactly once, also when leads arrive between pages."""

import uuid
from datetime import UTC, datetime

import pytest

from app.domain import lead_writes
from app.domain.profile import new_profile
from tests.factories import bearer, send
from tests.leads.helpers import cold, event, hot, list_leads


async def walk(client, site, **params):
    """Every page of a listing: the ids in order, and the number of pages."""
    ids, cursor, pages = [], None, 0
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/v1/leads", headers=bearer(site.secret_key), params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        ids += [lead["id"] for lead in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return ids, pages


def scored_visitors(count: int) -> list[dict]:
    """`count` leads; many share a score, so the id must break ties."""
    events = []
    for i in range(count):
        events += cold(f"v{i}", i)
        if i % 3 == 0:
            events.append(event(f"v{i}", "Product Viewed", i + 0.5, product_id="p"))
    return events


@pytest.mark.parametrize("sort", ["score", "recent"])
async def test_pages_hold_every_lead_once_in_order(client, site, sort):
    await send(client, site, *scored_visitors(23))
    everything = (
        await client.get(
            "/v1/leads", headers=bearer(site.secret_key), params={"sort": sort, "limit": 200}
        )
    ).json()
    assert everything["next_cursor"] is None
    all_ids = [lead["id"] for lead in everything["data"]]
    assert len(all_ids) == 23

    ids, pages = await walk(client, site, sort=sort, limit=5)
    assert ids == all_ids
    assert pages == 5


async def test_an_exact_last_page_has_no_next_cursor(client, site):
    await send(client, site, *scored_visitors(4))
    r = await client.get("/v1/leads", headers=bearer(site.secret_key), params={"limit": 4})
    assert len(r.json()["data"]) == 4
    assert r.json()["next_cursor"] is None


@pytest.mark.parametrize("sort", ["score", "recent"])
async def test_leads_arriving_between_pages_cause_no_duplicates_or_gaps(client, site, sort):
    await send(client, site, *scored_visitors(12))
    before, _ = await walk(client, site, sort=sort, limit=200)

    seen, cursor = [], None
    for page_number in range(100):
        query = {"sort": sort, "limit": 4, **({"cursor": cursor} if cursor else {})}
        body = (await client.get("/v1/leads", headers=bearer(site.secret_key), params=query)).json()
        seen += [lead["id"] for lead in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        # New leads, hotter and more recent than anything seen, and as cold as the rest.
        await send(client, site, *hot(f"new-hot-{page_number}", 1000 + page_number))
        await send(client, site, *cold(f"new-cold-{page_number}", page_number + 0.25))

    assert len(seen) == len(set(seen)), "a lead was listed twice"
    assert [i for i in seen if i in before] == before, "a lead that was there was skipped"


@pytest.mark.parametrize(
    "cursor",
    ["not-a-cursor", "eyJzIjoic2NvcmUifQ", "e30", "eyJzIjoic2NvcmUiLCJ2IjoiaGlnaCIsImlkIjoiMSJ9"],
)
async def test_a_bad_cursor_is_400(client, site, cursor):
    r = await client.get("/v1/leads", headers=bearer(site.secret_key), params={"cursor": cursor})
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_cursor"


async def test_a_cursor_of_another_sort_is_400(client, site):
    await send(client, site, *scored_visitors(3))
    r = await client.get("/v1/leads", headers=bearer(site.secret_key), params={"limit": 1})
    cursor = r.json()["next_cursor"]
    r = await client.get(
        "/v1/leads", headers=bearer(site.secret_key), params={"cursor": cursor, "sort": "recent"}
    )
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_cursor"
    assert "sort=score" in r.json()["message"]


async def test_recency_pages_break_ties_by_id_and_end_with_leads_never_seen(client, site, session):
    # Seven leads seen at the same moment (the id orders them), then leads with no event yet
    # (no last_seen_at), which come last: pages cross both boundaries.
    await send(client, site, *[e for i in range(7) for e in cold(f"tie{i}", 0)])
    await send(client, site, *cold("later", 5))
    conn = await session.connection()
    never_seen = [new_profile(uuid.uuid4(), site.site.id, datetime.now(UTC)) for _ in range(4)]
    await lead_writes.insert_new(conn, never_seen)
    await session.commit()

    everything = await list_leads(client, site, sort="recent", limit=200)
    all_ids = [lead["id"] for lead in everything["data"]]
    assert len(all_ids) == 12
    assert all_ids[-4:] == sorted((str(p["id"]) for p in never_seen), reverse=True)
    for limit in (3, 5, 7, 8):
        ids, _ = await walk(client, site, sort="recent", limit=limit)
        assert ids == all_ids, limit
