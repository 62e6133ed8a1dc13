"""The funnel's ready / interested / cold shares (by the site's own thresholds) and the moves
between temperatures made in the period, whoever made them: events, or decay through the
temperature refresher."""

from datetime import timedelta

from sqlalchemy import func, select

from app.db import utcnow
from app.leads import moves
from app.leads.models import TemperatureMove
from app.scoring import rescoring
from tests.factories import bearer, lead_by_anonymous_id, send
from tests.rules.helpers import publish, views, views_rule_set


async def funnel(client, site):
    r = await client.get("/v1/stats/funnel", headers=bearer(site.secret_key))
    assert r.status_code == 200, r.text
    return r.json()


async def test_shares_by_the_site_s_thresholds_and_the_moves_between_them(
    app, client, session, site
):
    # 10 points a view: warm at 30, hot at 60; halved every hour.
    await publish(client, site.secret_key, views_rule_set(decay={"half_life": "1h"}))
    now = utcnow()
    origin = now - timedelta(minutes=20)
    await send(client, site, *views("a", 4, origin=origin))  # a new lead, warm: not a move
    await send(client, site, *views("a", 3, start=4, origin=origin))  # warm -> hot
    await send(client, site, *views("b", 4, origin=origin))  # warm
    await send(client, site, *views("c", 1, origin=origin))  # cold
    stats = await funnel(client, site)
    assert stats["leads"] == 3
    assert stats["shares"] == {"ready": 0.3333, "interested": 0.3333, "cold": 0.3333}
    assert stats["moves"] == [{"from": "warm", "to": "hot", "leads": 1}]

    # A day later every score has decayed: the refresher cools a and b.
    await rescoring.refresh_temperatures(app.state.background.context, now + timedelta(days=1))
    lead = await lead_by_anonymous_id(session, site.site.id, "b")
    assert lead.temperature == "cold"
    await session.commit()
    stats = await funnel(client, site)
    assert stats["shares"] == {"ready": 0.0, "interested": 0.0, "cold": 1.0}
    moved = {(m["from"], m["to"]): m["leads"] for m in stats["moves"]}
    assert moved[("warm", "hot")] == 1
    assert moved[("warm", "cold")] >= 1  # b (and a, if it cooled through warm)
    assert sum(n for (a, _), n in moved.items() if a == "hot") == 1  # a left hot once

    # Once their hour has ended, the rows are compacted into one per hour and kind: the same
    # answer from fewer rows.
    raw = await session.scalar(select(func.count()).select_from(TemperatureMove))
    await moves.compact(app.state.engine, utcnow() + timedelta(hours=1))
    rows = (await session.scalars(select(TemperatureMove))).all()
    await session.commit()
    assert all(row.compacted for row in rows)
    assert len(rows) == len(moved) <= raw
    assert (await funnel(client, site))["moves"] == stats["moves"]
