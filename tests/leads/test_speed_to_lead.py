"""Speed to lead on crafted data: median and p90 from hot to first contact, the share
contacted within each mark, and the leads overdue now."""

import random
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import and_

from app.domain.tables import Lead
from app.leads import stats
from tests.factories import T0, bearer


def hot_lead(site_id, hot_at, waited_minutes=None, **fields):
    contacted = None if waited_minutes is None else hot_at + timedelta(minutes=waited_minutes)
    return Lead(
        id=uuid.uuid4(),
        site_id=site_id,
        temperature="hot",
        became_hot_at=hot_at,
        contact_by=hot_at + timedelta(minutes=5),
        first_contacted_at=contacted,
        status="new" if waited_minutes is None else "contacted",
        **fields,
    )


async def test_speed_to_lead_figures(client, session, site):
    waits = [1, 2, 3, 4, 6, 8, 12, 20, 40]  # minutes; and one lead never contacted
    leads = [hot_lead(site.site.id, T0 + timedelta(hours=i), w) for i, w in enumerate(waits)]
    leads.append(hot_lead(site.site.id, T0 + timedelta(hours=20)))
    leads.append(hot_lead(site.site.id, T0 - timedelta(days=3)))  # before the period: overdue
    session.add_all(leads)
    await session.commit()

    r = await client.get(
        "/v1/stats/speed-to-lead",
        headers=bearer(site.secret_key),
        params={"from": T0.isoformat(), "to": (T0 + timedelta(days=1)).isoformat()},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["hot_leads"] == 10
    assert body["contacted"] == 9
    assert body["median_seconds"] == 6 * 60
    assert body["p90_seconds"] == round((20 + (40 - 20) * 0.2) * 60, 1)
    assert body["within_minutes"] == {"5": 0.4, "10": 0.6, "15": 0.7, "30": 0.8}
    assert body["overdue_now"] == 2
    assert datetime.fromisoformat(body["from"]) == T0


async def test_an_empty_period(client, site):
    r = await client.get("/v1/stats/speed-to-lead", headers=bearer(site.secret_key))
    body = r.json()
    assert body["hot_leads"] == 0
    assert body["median_seconds"] is None
    assert body["within_minutes"]["5"] == 0.0


async def test_postgresqls_aggregate_equals_the_summary_counted_in_python(session, site, db_engine):
    if db_engine.dialect.name != "postgresql":
        pytest.skip("the aggregate is PostgreSQL's; SQLite counts in Python")
    rng = random.Random(7)
    leads = []
    for _ in range(400):
        hot_at = T0 + timedelta(minutes=rng.uniform(0, 60 * 24 * 6))
        # Never contacted, contacted in seconds to hours, or before turning hot (counted as 0).
        waited = rng.choice([None, rng.uniform(0, 3), rng.uniform(0, 90), rng.uniform(-5, 0)])
        leads.append(hot_lead(site.site.id, hot_at, waited))
    session.add_all(leads)
    await session.commit()
    marks = [5.0, 10.0, 15.0, 30.0]
    for days in (1, 3, 7):
        period = and_(
            Lead.site_id == site.site.id,
            Lead.merged_into_id.is_(None),
            Lead.became_hot_at >= T0,
            Lead.became_hot_at < T0 + timedelta(days=days),
        )
        in_python = await stats._waits_counted_here(session, period, marks)
        in_database = await stats._waits_in_database(session, period, marks)
        assert in_python["contacted"] > 10
        assert in_database == in_python
