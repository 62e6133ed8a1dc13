"""Publishing re-scores the site's existing leads, so that no score mixes rule-set versions:
before answering for a small site, otherwise with a background job that workers lease."""

import asyncio
import copy
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from app.db import utcnow
from app.domain.lead_rows import lead_row
from app.domain.tables import Lead
from app.scoring import engine, rescoring
from app.scoring.models import RuleSetVersion
from app.scoring.scorer import rescore_from_history, rule_set_for_version
from tests.factories import T0, at, bearer, send
from tests.rules.helpers import leads_of, publish, views, views_rule_set


@pytest.fixture
async def five_leads(client, site):
    """Leads v1..v4 with 1..4 product views, and v0 with a page view only."""
    events = [{"type": "page", "anonymousId": "v0", "messageId": "v0-page"}]
    for n in range(1, 5):
        events += views(f"v{n}", n)
    await send(client, site, *events)


def background(app):
    return app.state.background.context


async def test_a_small_site_is_rescored_before_publishing_answers(
    client, session, site, five_leads
):
    before = await leads_of(session, site.site.id)
    assert {lead.rule_set_version for lead in before} == {1}

    body = await publish(client, site.secret_key, views_rule_set(points=10, warm=20, hot=40))

    job = body["job"]
    assert job["status"] == "done"
    assert (job["processed"], job["total"], job["percent"]) == (5, 5, 100.0)
    assert job["started_at"]
    assert job["finished_at"]
    leads = await leads_of(session, site.site.id)
    assert {lead.rule_set_version for lead in leads} == {2}
    by_score = sorted((lead.score, lead.temperature) for lead in leads)
    assert by_score == [
        (0.0, "cold"),
        (10.0, "cold"),
        (20.0, "warm"),
        (30.0, "warm"),
        (40.0, "hot"),
    ]


async def test_a_large_site_is_rescored_by_a_background_job_in_batches(
    app, client, session, settings, site, five_leads
):
    settings.scoring.rescore_sync_max_leads = 4
    settings.scoring.rescore_batch_leads = 2
    body = await publish(client, site.secret_key, views_rule_set(points=10, warm=20, hot=40))

    job = body["job"]
    assert (job["status"], job["processed"], job["total"], job["percent"]) == (
        "pending",
        0,
        5,
        0.0,
    )
    assert job["started_at"] is None
    assert {lead.rule_set_version for lead in await leads_of(session, site.site.id)} == {1}

    stop = asyncio.Event()
    await rescoring.rescore_jobs_loop(background(app), stop, iterations=2)

    progress = (await client.get(job["url"], headers=bearer(site.secret_key))).json()
    assert (progress["status"], progress["processed"], progress["total"]) == ("done", 5, 5)
    assert progress["percent"] == 100.0
    assert progress["started_at"]
    assert progress["finished_at"]
    leads = await leads_of(session, site.site.id)
    assert {lead.rule_set_version for lead in leads} == {2}
    assert sorted(lead.score for lead in leads) == [0, 10, 20, 30, 40]


async def test_job_progress_counts_leads_ingestion_already_rescored(
    app, client, session, settings, site, five_leads
):
    settings.scoring.rescore_sync_max_leads = 0
    body = await publish(client, site.secret_key, views_rule_set(points=10, warm=20, hot=40))
    # Ingestion re-scores the stale leads it touches, before the job gets to them.
    await send(client, site, *views("v1", 1, start=60), *views("v2", 1, start=60))

    job = await rescoring.claim_job(background(app).engine, utcnow(), timedelta(seconds=60))
    assert job is not None
    assert (job.processed, job.total) == (2, 5)
    progress = (await client.get(body["job"]["url"], headers=bearer(site.secret_key))).json()
    assert (progress["status"], progress["processed"], progress["percent"]) == (
        "running",
        2,
        40.0,
    )


async def test_a_job_whose_worker_died_is_taken_over_when_its_lease_expires(
    app, client, session, settings, site, five_leads
):
    settings.scoring.rescore_sync_max_leads = 0
    await publish(client, site.secret_key, views_rule_set(points=10, warm=20, hot=40))
    context = background(app)
    lease = timedelta(seconds=settings.scoring.rescore_lease_seconds)
    start = utcnow()
    dead = await rescoring.claim_job(context.engine, start, lease)  # ...and never runs it
    assert dead is not None

    # While the lease holds, no other worker takes the job.
    assert await rescoring.rescore_next_job(context, clock=lambda: start) is None
    later = start + lease + timedelta(seconds=1)
    assert await rescoring.rescore_next_job(context, clock=lambda: later) == "done"

    assert {lead.rule_set_version for lead in await leads_of(session, site.site.id)} == {2}
    # The first worker, back to life, finds the job is no longer its own and stops.
    config = rescoring.RescoreConfig.from_settings(settings)
    outcome = await rescoring.run_job(context.engine, dead, config, lambda: later)
    assert outcome == "stopped"


async def test_a_newer_publish_supersedes_a_pending_job(
    app, client, session, settings, site, five_leads
):
    settings.scoring.rescore_sync_max_leads = 0
    first = await publish(client, site.secret_key, views_rule_set(points=10))
    second = await publish(client, site.secret_key, views_rule_set(points=1))

    old = (await client.get(first["job"]["url"], headers=bearer(site.secret_key))).json()
    assert old["status"] == "superseded"
    assert "newer rule-set version" in old["error"]
    assert old["finished_at"]

    await rescoring.rescore_jobs_loop(background(app), asyncio.Event(), iterations=2)
    new = (await client.get(second["job"]["url"], headers=bearer(site.secret_key))).json()
    assert new["status"] == "done"
    leads = await leads_of(session, site.site.id)
    assert {lead.rule_set_version for lead in leads} == {3}
    assert sorted(lead.score for lead in leads) == [0, 1, 2, 3, 4]


async def test_a_running_job_stops_when_a_newer_version_is_published(
    app, client, session, settings, site, five_leads
):
    settings.scoring.rescore_sync_max_leads = 0
    await publish(client, site.secret_key, views_rule_set(points=10))
    context = background(app)
    config = rescoring.RescoreConfig.from_settings(settings)
    running = await rescoring.claim_job(context.engine, utcnow(), config.lease)
    assert running is not None

    await publish(client, site.secret_key, views_rule_set(points=1))

    assert await rescoring.run_job(context.engine, running, config, utcnow) == "stopped"
    assert {lead.rule_set_version for lead in await leads_of(session, site.site.id)} == {1}
    assert await rescoring.rescore_next_job(context) == "done"
    assert {lead.rule_set_version for lead in await leads_of(session, site.site.id)} == {3}


async def test_an_unknown_job_is_not_found(client, site):
    r = await client.get(
        "/v1/rules/jobs/00000000-0000-4000-8000-000000000000", headers=bearer(site.secret_key)
    )
    assert r.status_code == 404


async def test_a_job_that_fails_records_the_error(app, client, session, settings, site, five_leads):
    settings.scoring.rescore_sync_max_leads = 0
    body = await publish(client, site.secret_key, views_rule_set())
    # A stored version no longer valid (edited by hand in the database, say).
    await session.execute(
        update(RuleSetVersion)
        .where(RuleSetVersion.site_id == site.site.id, RuleSetVersion.version == 2)
        .values(definition={"name": "broken"})
    )
    await session.commit()

    assert await rescoring.rescore_next_job(background(app)) == "failed"

    job = (await client.get(body["job"]["url"], headers=bearer(site.secret_key))).json()
    assert job["status"] == "failed"
    assert "thresholds" in job["error"]
    assert job["finished_at"]
    assert await rescoring.rescore_next_job(background(app)) is None  # not retried


async def test_batched_rescoring_equals_replaying_each_lead_on_its_own(
    app, client, session, settings, site
):
    """Re-scoring reads a batch's events in one query (the page url extracted by the
    database); what it writes is what replaying each lead's full stored events gives."""
    rule_set = views_rule_set(
        points=10,
        warm=30,
        hot=45,
        behaviour=[
            {"id": "pricing", "event": "page", "points": 15, "frequency": "once_per_visit",
             "conditions": [{"field": "url", "op": "contains", "value": "/pricing"}]},
            {"id": "return", "event": "page", "points": 5,
             "conditions": [{"field": "visit", "op": "gte", "value": 2}]},
        ],
        decay={"half_life": "3d"},
    )  # fmt: skip
    events = []
    for n in range(7):
        visitor = f"w{n}"
        events += views(visitor, n % 4 + 1, start=n * 90)
        for hours, url in ((0, "https://shop.example/pricing"), (2, "https://shop.example/")):
            page: dict[str, Any] = {"type": "page", "anonymousId": visitor}
            page["timestamp"] = at(n * 60 + hours * 60)
            page["context"] = {"page": {"url": url}}
            events.append(page)
    # A url that is not text in the context (ignored), one only in the properties (used), an
    # empty one in the context (the properties' is used), none at all.
    events += [
        {"type": "page", "anonymousId": "odd", "timestamp": at(1), "context": {"page": {"url": 7}},
         "properties": {"url": "https://shop.example/pricing"}},
        {"type": "page", "anonymousId": "odd", "timestamp": at(2),
         "properties": {"url": "https://shop.example/pricing/b"}},
        {"type": "page", "anonymousId": "odd", "timestamp": at(200),
         "context": {"page": {"url": ""}}, "properties": {"url": "https://shop.example/pricing/c"}},
        {"type": "page", "anonymousId": "odd", "timestamp": at(400), "context": {"page": {}}},
    ]  # fmt: skip
    # Two leads merged by an identify: the survivor's history is both.
    events += views("m1", 2, start=10) + views("m2", 2, start=20)
    for visitor, minute in (("m2", 5), ("m1", 30)):
        events.append(
            {"type": "identify", "anonymousId": visitor, "userId": "m1", "timestamp": at(minute)}
        )
    await send(client, site, *events)
    settings.scoring.rescore_sync_max_leads = 0
    settings.scoring.rescore_batch_leads = 3
    await publish(client, site.secret_key, rule_set)
    now = T0 + timedelta(hours=12)  # after every event; decay has begun
    context = background(app)

    assert await rescoring.rescore_next_job(context, clock=lambda: now) == "done"

    compiled = engine.compile_rule_set(rule_set_for_version(rule_set, 2))
    visit_timeout = timedelta(minutes=settings.ingestion.visit_timeout_minutes)
    leads = [lead for lead in await leads_of(session, site.site.id) if not lead.merged_into_id]
    assert len(leads) == 9
    async with context.engine.connect() as conn:
        for lead in leads:
            expected = lead_row({c.key: getattr(lead, c.key) for c in Lead.__table__.columns})
            expected = copy.deepcopy(expected)
            await rescore_from_history(conn, expected, compiled, visit_timeout, now)
            assert (lead.score, lead.temperature, lead.score_state, lead.rule_set_version) == (
                expected["score"],
                expected["temperature"],
                expected["score_state"],
                2,
            )
            assert lead.became_hot_at == expected["became_hot_at"]
    assert {lead.temperature for lead in leads} == {"cold", "warm", "hot"}
