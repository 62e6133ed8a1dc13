"""The temperature refresher: with time alone a hard-rule hold expires and points decay, so
warm and hot leads not scored for a while are re-evaluated and written back."""

import asyncio
from datetime import timedelta

import pytest

from app.db import utcnow
from app.scoring import rescoring
from tests.factories import lead_by_anonymous_id, send
from tests.rules.helpers import publish, views, views_rule_set

RULE_SET = views_rule_set(
    points=10,
    warm=30,
    hot=60,
    hard=[{"id": "contact", "steps": [{"event": "Contact Requested"}], "hold": "1h"}],
)


def contact_request(visitor, when):
    return {
        "type": "track",
        "event": "Contact Requested",
        "anonymousId": visitor,
        "timestamp": when.isoformat(),
        "properties": {"phone": "+7 900 000 00 00"},
    }


@pytest.fixture
async def three_leads(client, site) -> None:
    """Three leads scored at ingestion: `gone` asked for a call 3 h ago (held hot for 1 h),
    `fresh` 10 minutes ago, `browsing` viewed three products 3 h ago (warm, no decay)."""
    await publish(client, site.secret_key, RULE_SET)
    now = utcnow()
    await send(
        client,
        site,
        contact_request("gone", now - timedelta(hours=3)),
        contact_request("fresh", now - timedelta(minutes=10)),
        *views("browsing", 3, origin=now - timedelta(hours=3)),
    )


async def temperatures(session, site):
    found = {}
    for visitor in ("gone", "fresh", "browsing"):
        found[visitor] = (await lead_by_anonymous_id(session, site.site.id, visitor)).temperature
    await session.commit()
    return found


async def test_a_lead_whose_hard_rule_hold_expired_cools_down(app, session, site, three_leads):
    # Ingestion scored each lead at its event's time: all three look as they did then.
    assert await temperatures(session, site) == {"gone": "hot", "fresh": "hot", "browsing": "warm"}
    later = utcnow() + timedelta(minutes=1)

    await rescoring.temperature_refresher_loop(
        app.state.background.context, asyncio.Event(), clock=lambda: later, iterations=1
    )

    assert await temperatures(session, site) == {
        "gone": "cold",
        "fresh": "hot",
        "browsing": "warm",
    }
    gone = await lead_by_anonymous_id(session, site.site.id, "gone")
    await session.commit()
    assert gone.score == 0
    assert gone.scored_at == later
    assert gone.score_state is not None
    assert gone.score_state["temperature"] == "cold"
    assert gone.became_hot_at is not None  # the history stays


async def test_leads_scored_within_the_interval_are_left_alone(app, session, site, three_leads):
    context = app.state.background.context
    assert await rescoring.refresh_temperatures(context, utcnow()) == 0
    assert (await temperatures(session, site))["gone"] == "hot"

    written = await rescoring.refresh_temperatures(context, utcnow() + timedelta(minutes=1))
    assert written == 1  # only `gone` changed; unchanged leads are not rewritten
    assert await rescoring.refresh_temperatures(context, utcnow() + timedelta(minutes=1)) == 0


async def test_decay_cools_a_warm_lead_over_days(app, client, session, site):
    await publish(client, site.secret_key, views_rule_set(decay={"half_life": "1d"}))
    now = utcnow()
    await send(client, site, *views("v", 4, origin=now - timedelta(minutes=5)))
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    await session.commit()
    assert lead.temperature == "warm"

    await rescoring.refresh_temperatures(app.state.background.context, now + timedelta(days=1))

    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    await session.commit()
    assert lead.temperature == "cold"
    assert lead.score == pytest.approx(20, abs=0.1)  # 40 points, one half-life later
