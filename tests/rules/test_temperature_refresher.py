"""The temperature refresher: with time alone a hard-rule hold expires and points decay, so
leads whose next change came are re-evaluated and written back."""

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


async def test_only_leads_whose_due_time_came_are_rewritten(app, session, site, three_leads):
    """`gone`'s hold ended before ingestion stored it: due at once. `fresh`'s ends 50 minutes
    from now: due exactly then. `browsing` has nothing that decays: never due."""
    context = app.state.background.context
    fresh = await lead_by_anonymous_id(session, site.site.id, "fresh")
    due, became_hot_at = fresh.next_check_at, fresh.became_hot_at
    browsing = await lead_by_anonymous_id(session, site.site.id, "browsing")
    assert browsing.next_check_at is None
    await session.commit()
    assert due is not None
    assert became_hot_at is not None
    assert due == became_hot_at + timedelta(hours=1)

    now = utcnow()
    assert await rescoring.refresh_temperatures(context, now) == 1  # `gone`
    assert await rescoring.refresh_temperatures(context, now) == 0
    assert (await temperatures(session, site))["gone"] == "cold"

    before_due = due - timedelta(seconds=1)
    assert await rescoring.refresh_temperatures(context, before_due) == 0
    assert (await temperatures(session, site))["fresh"] == "hot"
    assert await rescoring.refresh_temperatures(context, due) == 1
    assert await temperatures(session, site) == {
        "gone": "cold",
        "fresh": "cold",
        "browsing": "warm",
    }


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
