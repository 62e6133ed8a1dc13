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
from tests.team.helpers import make_user


def hot_lead(site_id, hot_at, waited_minutes=None, **fields):
    contacted = None if waited_minutes is None else hot_at + timedelta(minutes=waited_minutes)
    return Lead(
        id=uuid.uuid4(),
        site_id=site_id,
        temperature="hot",
        became_hot_at=hot_at,
        contact_by=hot_at + timedelta(minutes=5),
        first_contacted_at=contacted,
        **{"status": "new" if waited_minutes is None else "contacted", **fields},
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
    owners = [uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), None]
    for _ in range(400):
        hot_at = T0 + timedelta(minutes=rng.uniform(0, 60 * 24 * 6))
        # Never contacted, contacted in seconds to hours, or before turning hot (counted as 0).
        waited = rng.choice([None, rng.uniform(0, 3), rng.uniform(0, 90), rng.uniform(-5, 0)])
        lead = hot_lead(site.site.id, hot_at, waited, owner_id=rng.choice(owners))
        if waited is not None and rng.random() < 0.3:
            lead.status, lead.lost_reason = rng.choice([("won", None), ("lost", "spam")])
        leads.append(lead)
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
        by_owner = {"by_owner": True}
        per_owner = await stats._grouped_counted_here(session, period, marks, **by_owner)
        assert len(per_owner) == 5  # the team, three people and the unowned
        assert await stats._grouped_in_database(session, period, marks, **by_owner) == per_owner


async def test_speed_to_lead_per_owner_with_won_and_lost(client, session, site):
    anna = (await make_user(session, site, "manager", "anna@shop.example", name="Anna")).id
    boris = (await make_user(session, site, "manager", "boris@shop.example")).id
    hour = timedelta(hours=1)
    leads = [
        hot_lead(site.site.id, T0, 2, owner_id=anna, status="won"),
        hot_lead(site.site.id, T0 + hour, 4, owner_id=anna),
        hot_lead(
            site.site.id,
            T0 + 2 * hour,
            12,
            owner_id=anna,
            status="lost",
            lost_reason="waited_too_long",
        ),  # fmt: skip
        hot_lead(
            site.site.id,
            T0 + 3 * hour,
            20,
            owner_id=boris,
            status="lost",
            lost_reason="bought_elsewhere",
        ),  # fmt: skip
        hot_lead(site.site.id, T0 + 4 * hour, owner_id=boris),  # overdue
        hot_lead(site.site.id, T0 + 5 * hour),  # nobody's, overdue
        hot_lead(site.site.id, T0 - timedelta(days=3), 1, owner_id=anna),  # before the period
    ]
    session.add_all(leads)
    await session.commit()
    r = await client.get(
        "/v1/stats/speed-to-lead",
        headers=bearer(site.secret_key),
        params={"from": T0.isoformat(), "to": (T0 + timedelta(days=1)).isoformat(), "by": "owner"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["hot_leads"], body["won"], body["lost"], body["overdue_now"]) == (6, 1, 2, 2)
    assert body["lost_by_reason"] == {"bought_elsewhere": 1, "waited_too_long": 1}
    people = {(p["owner"] or {}).get("name", p["owner_id"]): p for p in body["by_owner"]}
    assert set(people) == {"Anna", "", None}  # boris has no name; the unowned last
    a = people["Anna"]
    assert (a["hot_leads"], a["contacted"], a["median_seconds"]) == (3, 3, 240)
    assert a["within_minutes"] == {
        "5": round(2 / 3, 4),
        "10": round(2 / 3, 4),
        "15": 1.0,
        "30": 1.0,
    }
    assert (a["won"], a["lost"], a["lost_by_reason"], a["overdue_now"]) == (
        1, 1, {"waited_too_long": 1}, 0,
    )  # fmt: skip
    b = people[""]
    assert b["owner_id"] == str(boris)
    assert (b["hot_leads"], b["contacted"], b["median_seconds"], b["overdue_now"]) == (
        2,
        1,
        1200,
        1,
    )
    assert b["lost_by_reason"] == {"bought_elsewhere": 1}
    nobody = people[None]
    assert (nobody["hot_leads"], nobody["contacted"], nobody["overdue_now"]) == (1, 0, 1)
    assert body["by_owner"][-1]["owner"] is None
    plain = await client.get("/v1/stats/speed-to-lead", headers=bearer(site.secret_key))
    assert plain.json()["by_owner"] is None
    assert plain.json()["won"] is None  # only with by=owner: not in the covering index
    bad = await client.get(
        "/v1/stats/speed-to-lead", headers=bearer(site.secret_key), params={"by": "city"}
    )
    assert bad.status_code == 422
