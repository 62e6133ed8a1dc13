"""Both stats routes read their period [from, to) the same way: as given, by default the 30
days up to now (the same clock), and a 422 in the one error shape when `from` is not before
`to`."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.tables import Lead
from app.leads.endpoints import current_time
from tests.factories import bearer

STATS = ["/v1/stats/funnel", "/v1/stats/speed-to-lead"]
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock(app) -> Iterator[datetime]:
    app.dependency_overrides[current_time] = lambda: NOW
    yield NOW
    app.dependency_overrides.pop(current_time, None)


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def stats(client, site, path, **params):
    r = await client.get(path, headers=bearer(site.secret_key), params=params)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("path", STATS)
async def test_the_period_given_is_the_one_answered(client, site, path):
    start, end = NOW - timedelta(days=3), NOW - timedelta(days=1)
    body = await stats(client, site, path, **{"from": start.isoformat(), "to": end.isoformat()})
    assert (moment(body["from"]), moment(body["to"])) == (start, end)


@pytest.mark.parametrize("path", STATS)
async def test_by_default_the_30_days_up_to_now(client, site, clock, path):
    body = await stats(client, site, path)
    assert (moment(body["from"]), moment(body["to"])) == (clock - timedelta(days=30), clock)


@pytest.mark.parametrize("path", STATS)
async def test_only_to_given_the_30_days_before_it(client, site, clock, path):
    end = clock - timedelta(days=100)
    body = await stats(client, site, path, to=end.isoformat())
    assert (moment(body["from"]), moment(body["to"])) == (end - timedelta(days=30), end)


@pytest.mark.parametrize("path", STATS)
async def test_only_from_given_up_to_now(client, site, clock, path):
    start = clock - timedelta(days=2)
    body = await stats(client, site, path, **{"from": start.isoformat()})
    assert (moment(body["from"]), moment(body["to"])) == (start, clock)


@pytest.mark.parametrize("path", STATS)
@pytest.mark.parametrize("later", [timedelta(0), -timedelta(hours=1)])
async def test_from_not_before_to_is_a_422(client, site, path, later):
    params = {"from": NOW.isoformat(), "to": (NOW + later).isoformat()}
    r = await client.get(path, headers=bearer(site.secret_key), params=params)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "validation_error"
    assert body["message"] == "'from' must be before 'to'."
    assert [d["loc"] for d in body["details"]] == [["query", "from"]]


async def test_speed_to_lead_counts_overdue_leads_on_the_same_clock(client, session, site, app):
    session.add(
        Lead(
            id=uuid.uuid4(),
            site_id=site.site.id,
            temperature="hot",
            became_hot_at=NOW - timedelta(minutes=10),
            contact_by=NOW - timedelta(minutes=5),
            status="new",
        )
    )
    await session.commit()
    overdue = {}
    try:
        for minutes in (-6, -4):
            app.dependency_overrides[current_time] = lambda m=minutes: NOW + timedelta(minutes=m)
            overdue[minutes] = (await stats(client, site, STATS[1]))["overdue_now"]
    finally:
        app.dependency_overrides.pop(current_time, None)
    assert overdue == {-6: 0, -4: 1}
