"""The refresher's costs: a lead is rewritten only when what a dashboard shows changes (its
temperature, or its score by a whole point), so pure decay moves neither `updated_at` nor the
list's ETag; and one process of a deployment runs it (a lease in the database)."""

import asyncio
from datetime import timedelta

from app import leases
from app.db import utcnow, writer
from app.scoring import rescoring
from tests.factories import bearer, lead_by_anonymous_id, send
from tests.rules.helpers import publish, views, views_rule_set


async def page(client, site):
    r = await client.get("/v1/leads", headers=bearer(site.secret_key), params={"sort": "score"})
    assert r.status_code == 200, r.text
    return r.headers["etag"], [(lead["id"], lead["score"]) for lead in r.json()["data"]]


async def test_pure_decay_moves_neither_updated_at_nor_the_etag(app, client, session, site):
    # 4 views of 10 points, half-life 10 days: a whole point is lost after ~0.37 days.
    await publish(client, site.secret_key, views_rule_set(decay={"half_life": "10d"}))
    now = utcnow()
    await send(client, site, *views("v", 4, origin=now - timedelta(minutes=5)))
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    await session.commit()
    updated_at, score, due = lead.updated_at, lead.score, lead.next_check_at
    assert due is not None
    assert timedelta(hours=8) < due - now < timedelta(hours=9)
    etag, rows = await page(client, site)
    context = app.state.background.context

    for hours in (1, 4, 8):  # decayed, but by less than a point: not even looked at
        assert await rescoring.refresh_temperatures(context, now + timedelta(hours=hours)) == 0
    assert (await page(client, site)) == (etag, rows)

    # A far crossing is located coarsely and early: the refresher looks, finds the score
    # still within a point (nothing written), and has the next time closer each look.
    looks = 0
    while await rescoring.refresh_temperatures(context, due) == 0:
        looks += 1
        lead = await lead_by_anonymous_id(session, site.site.id, "v")
        assert lead.updated_at == updated_at
        assert lead.next_check_at is not None
        assert lead.next_check_at > due
        due = lead.next_check_at
        await session.commit()
    assert looks <= 3
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    await session.commit()
    assert lead.updated_at == due
    assert score - 1.02 < lead.score <= score - 1  # written within seconds of the crossing
    assert lead.next_check_at is not None
    assert lead.next_check_at > due
    later_etag, later_rows = await page(client, site)
    assert later_etag != etag
    assert later_rows == [(str(lead.id), lead.score)]  # sort=score reads the stored score


async def test_a_look_that_finds_nothing_to_show_only_moves_the_next_time(
    app, client, session, site
):
    await publish(client, site.secret_key, views_rule_set(decay={"half_life": "10d"}))
    now = utcnow()
    await send(client, site, *views("v", 4, origin=now - timedelta(minutes=5)))
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    await session.commit()
    updated_at, due = lead.updated_at, lead.next_check_at
    assert due is not None
    # As if the time had been worked out early (a far crossing is located coarsely).
    early = due - timedelta(hours=2)
    lead.next_check_at = early
    await session.commit()

    assert await rescoring.refresh_temperatures(app.state.background.context, early) == 0

    session.expire_all()
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    await session.commit()
    assert lead.updated_at == updated_at
    assert lead.next_check_at is not None
    # `due` itself was located to 1/256 of its ~8 h distance (early): the crossing is close.
    assert early < lead.next_check_at <= due + timedelta(minutes=5)


async def test_one_process_holds_the_refresher_lease(app):
    now = utcnow()
    minute = timedelta(minutes=1)
    db = writer(app.state.background.context.engine)
    assert await leases.take(db, "test.lease", "a", now, minute)
    assert not await leases.take(db, "test.lease", "b", now + 30 * minute / 60, minute)
    assert await leases.take(db, "test.lease", "a", now + 30 * minute / 60, minute)  # renewed
    assert not await leases.take(db, "test.lease", "b", now + minute, minute)
    assert await leases.take(db, "test.lease", "b", now + 2 * minute, minute)  # a's expired
    await leases.give_up(db, "test.lease", "a")  # not a's any more: nothing happens
    assert not await leases.take(db, "test.lease", "a", now + 2 * minute, minute)
    await leases.give_up(db, "test.lease", "b")
    assert await leases.take(db, "test.lease", "a", now + 2 * minute, minute)
    await leases.give_up(db, "test.lease", "a")


async def test_a_refresher_without_the_lease_does_nothing(app, client, session, site):
    await publish(client, site.secret_key, views_rule_set(decay={"half_life": "1h"}))
    now = utcnow()
    await send(client, site, *views("v", 4, origin=now - timedelta(minutes=5)))
    context = app.state.background.context
    later = now + timedelta(days=1)
    db = writer(context.engine)
    assert await leases.take(db, rescoring.REFRESHER, "another replica", later, timedelta(hours=1))
    try:
        await rescoring.temperature_refresher_loop(
            context, asyncio.Event(), clock=lambda: later, iterations=1
        )
        lead = await lead_by_anonymous_id(session, site.site.id, "v")
        await session.commit()
        assert lead.temperature == "warm"  # not refreshed here
    finally:
        await leases.give_up(db, rescoring.REFRESHER, "another replica")
    await rescoring.temperature_refresher_loop(
        context, asyncio.Event(), clock=lambda: later, iterations=1
    )
    session.expire_all()
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    await session.commit()
    assert lead.temperature == "cold"
