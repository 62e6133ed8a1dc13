"""The dashboard's reads of leads use indexes on PostgreSQL, so that their cost does not grow
with the number of leads: the SQL each route runs is captured and EXPLAINed over a site with a
few thousand leads (and another site's), and no plan reads the whole leads table."""

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, insert, text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.config import Settings
from app.domain.tables import Lead
from app.leads import rollup
from app.sites.service import CreatedSite
from tests.conftest import make_settings
from tests.factories import bearer

LEADS_PER_SITE = 3000
HISTORY_DAYS = 730


@pytest.fixture
def settings(database_url: str) -> Settings:
    # No background loops: the app's own rollup pass at start would hold a site's rollup row
    # (SKIP LOCKED) while a test rolls up and reads the funnel, which then reads the leads.
    return make_settings(database_url, run_background=False)


@pytest.fixture(autouse=True)
def _postgresql_only(db_engine: AsyncEngine) -> None:
    if db_engine.dialect.name != "postgresql":
        pytest.skip("the query plans are PostgreSQL's (the target database at scale)")


def _leads(site_id: uuid.UUID, now: datetime, rng: random.Random) -> list[dict[str, Any]]:
    """Leads first seen over two years, some hot, some awaiting contact, a few merged."""
    rows: list[dict[str, Any]] = []
    for n in range(LEADS_PER_SITE):
        first_seen = now - timedelta(days=rng.uniform(0, HISTORY_DAYS))
        hot = rng.random() < 0.1
        became_hot = first_seen + timedelta(minutes=rng.uniform(0, 600)) if hot else None
        contacted = (
            became_hot + timedelta(minutes=rng.uniform(1, 90))
            if became_hot is not None and n % 2
            else None
        )
        rows.append(
            {
                "id": uuid.uuid4(),
                "site_id": site_id,
                "created_at": first_seen,
                "updated_at": first_seen,
                "first_seen_at": first_seen,
                "last_seen_at": None if n % 50 == 0 else first_seen + timedelta(hours=1),
                "score": rng.uniform(0, 100),
                "temperature": "hot" if hot else "cold",
                "identified": hot,
                "became_hot_at": became_hot,
                "contact_by": became_hot + timedelta(minutes=15) if became_hot else None,
                "first_contacted_at": contacted,
            }
        )
    survivor = rows[0]["id"]
    for row in rows[1:6]:  # leads merged into the first one
        row["merged_into_id"] = survivor
    return rows


@pytest.fixture
async def loaded(session: AsyncSession, site: CreatedSite, other_site: CreatedSite) -> uuid.UUID:
    """Both sites' leads, inserted in bulk and ANALYZEd; the id of a lead with merged leads."""
    rng = random.Random(18)
    now = datetime.now(UTC)
    rows = _leads(site.site.id, now, rng)
    await session.execute(insert(Lead), rows + _leads(other_site.site.id, now, rng))
    await session.execute(text("ANALYZE leads"))
    return rows[0]["id"]


@contextmanager
def captured_lead_queries() -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements reading `leads` run meanwhile, with their parameters."""
    queries: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM leads" in statement:
            queries.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", capture)
    try:
        yield queries
    finally:
        event.remove(Engine, "before_cursor_execute", capture)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def full_scans(db_engine: AsyncEngine, queries: list[tuple[str, Any]]) -> list[str]:
    """The statements whose plan reads every row of `leads`, with their plans."""
    found = []
    async with db_engine.connect() as conn:
        for statement, parameters in queries:
            result = await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
            plan = result.scalar_one()[0]["Plan"]
            if any(
                node["Node Type"] == "Seq Scan" and node.get("Relation Name") == "leads"
                for node in _nodes(plan)
            ):
                found.append(f"{statement}\n{plan}")
    return found


async def test_the_recent_list_and_its_cursor_pages_use_an_index(
    client: httpx.AsyncClient, site: CreatedSite, db_engine: AsyncEngine, loaded: uuid.UUID
) -> None:
    with captured_lead_queries() as queries:
        first = await client.get(
            "/v1/leads", params={"sort": "recent"}, headers=bearer(site.secret_key)
        )
        assert first.status_code == 200, first.text
        cursor = first.json()["next_cursor"]
        assert cursor is not None
        second = await client.get(
            "/v1/leads",
            params={"sort": "recent", "cursor": cursor},
            headers=bearer(site.secret_key),
        )
        assert second.status_code == 200, second.text
    pages = [q for q in queries if "ORDER BY leads.last_seen_at DESC" in q[0]]
    assert len(pages) == 2, queries
    # (the page's profiles are then read by primary key)
    assert await full_scans(db_engine, pages) == []


async def test_the_lead_card_finds_merged_leads_by_an_index(
    client: httpx.AsyncClient, site: CreatedSite, db_engine: AsyncEngine, loaded: uuid.UUID
) -> None:
    with captured_lead_queries() as queries:
        r = await client.get(f"/v1/leads/{loaded}", headers=bearer(site.secret_key))
        assert r.status_code == 200, r.text
    merged = [q for q in queries if "leads.merged_into_id = " in q[0]]
    assert len(merged) == 1, queries
    assert await full_scans(db_engine, merged) == []


@pytest.mark.parametrize(
    "path", ["/v1/stats/funnel", "/v1/stats/speed-to-lead", "/v1/stats/speed-to-lead?by=owner"]
)
async def test_the_stats_use_indexes(
    client: httpx.AsyncClient,
    site: CreatedSite,
    db_engine: AsyncEngine,
    loaded: uuid.UUID,
    path: str,
) -> None:
    with captured_lead_queries() as queries:
        r = await client.get(path, headers=bearer(site.secret_key))
        assert r.status_code == 200, r.text
    # (the app's background loops, the funnel's rollup among them, may read leads meanwhile)
    marks = (
        ("first_seen_at >=",) if path.endswith("funnel") else ("became_hot_at >=", "contact_by <")
    )
    route = [q for q in queries if any(mark in q[0] for mark in marks)]
    assert len(route) == len(marks), queries
    assert await full_scans(db_engine, route) == []


LIST_QUERIES = [
    {"sort": sort, **filters}
    for sort in ("score", "recent")
    for filters in (
        {},
        {"temperature": "hot"},
        {"temperature": "warm,hot"},
        {"status": "won"},
        {"status": "new,contacted"},
        {"identified": "true"},
        {"min_score": "90"},
        {"updated_since": "2026-01-01T00:00:00Z"},
    )
]


@pytest.mark.parametrize(
    "params", LIST_QUERIES, ids=["&".join(f"{k}={v}" for k, v in p.items()) for p in LIST_QUERIES]
)
async def test_every_sort_and_filter_of_the_list_and_its_next_page_use_an_index(
    client: httpx.AsyncClient,
    site: CreatedSite,
    db_engine: AsyncEngine,
    loaded: uuid.UUID,
    params: dict[str, str],
) -> None:
    with captured_lead_queries() as queries:
        first = await client.get(
            "/v1/leads", params={**params, "limit": 5}, headers=bearer(site.secret_key)
        )
        assert first.status_code == 200, first.text
        cursor = first.json()["next_cursor"]
        if cursor is not None:
            r = await client.get(
                "/v1/leads",
                params={**params, "limit": 5, "cursor": cursor},
                headers=bearer(site.secret_key),
            )
            assert r.status_code == 200, r.text
    pages = [q for q in queries if "ORDER BY" in q[0]]
    assert pages, queries
    assert await full_scans(db_engine, pages) == []


async def test_the_funnel_from_its_rollup_with_changed_days_uses_indexes(
    client: httpx.AsyncClient,
    site: CreatedSite,
    session: AsyncSession,
    db_engine: AsyncEngine,
    loaded: uuid.UUID,
) -> None:
    await rollup.roll_up(db_engine, datetime.now(UTC))
    # Leads of two days changed since (their deltas are read with the counts).
    await session.execute(
        text(
            "UPDATE leads SET status = 'won' WHERE id IN "
            "(SELECT id FROM leads WHERE site_id = :site AND merged_into_id IS NULL "
            "AND first_seen_at > now() - interval '20 days' LIMIT 2)"
        ),
        {"site": site.site.id},
    )
    await session.execute(text("ANALYZE"))
    with captured_lead_queries() as queries:
        r = await client.get("/v1/stats/funnel", headers=bearer(site.secret_key))
        assert r.status_code == 200, r.text
    funnel = [q for q in queries if "funnel_counts" in q[0]]
    assert len(funnel) == 1, queries
    assert await full_scans(db_engine, funnel) == []


@pytest.mark.parametrize("by_owner", [False, True])
async def test_speed_to_lead_from_its_rollup_reads_only_the_edges_leads(
    client: httpx.AsyncClient,
    site: CreatedSite,
    db_engine: AsyncEngine,
    loaded: uuid.UUID,
    by_owner: bool,
) -> None:
    """Once rolled up, the period's whole days come from the counts: the leads read are those
    of the partial days at its edges, not the period's hot leads."""
    now = datetime.now(UTC)
    await rollup.roll_up(db_engine, now)
    period = {"from": (now - timedelta(days=365)).isoformat(), "to": now.isoformat()}
    with captured_lead_queries() as queries:
        r = await client.get(
            "/v1/stats/speed-to-lead",
            params={**period, "by": "owner"} if by_owner else period,
            headers=bearer(site.secret_key),
        )
        assert r.status_code == 200, r.text
    hot_in_period = r.json()["hot_leads"]
    assert hot_in_period > 100
    route = [q for q in queries if "became_hot_at >=" in q[0]]
    assert len(route) == 1, queries
    statement, parameters = route[0]
    assert "speed_counts" in statement
    assert await full_scans(db_engine, route) == []
    async with db_engine.connect() as conn:
        result = await conn.exec_driver_sql(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", parameters
        )
        plan = result.scalar_one()[0]["Plan"]
    leads_read = sum(
        node["Actual Rows"] for node in _nodes(plan) if node.get("Relation Name") == "leads"
    )
    assert leads_read < hot_in_period / 4, (leads_read, hot_in_period)
