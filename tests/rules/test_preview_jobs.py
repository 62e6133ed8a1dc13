"""Previewing a draft as a background job: started through the API, run by a worker (in
ranges over processes, or in the worker's loop), followed, cancelled, taken over when its
worker dies; its result is the synchronous preview's."""

import asyncio
import dataclasses
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from app.db import utcnow
from app.scoring import preview_jobs
from app.scoring.models import PreviewJob
from tests.factories import T0, at, bearer, create_site, send
from tests.rules.helpers import publish, views, views_rule_set

ACTIVE = views_rule_set(points=10, warm=30, hot=60)
DRAFT = views_rule_set(
    points=20,
    warm=35,
    hot=70,
    behaviour=[{"id": "unsubscribed", "event": "Unsubscribed", "points": -50}],
)
AT = (T0 + timedelta(hours=1)).isoformat()
VISITORS = 12  # leads v0..v11 with 1..12 product views; v3, v7 and v11 then unsubscribe


@pytest.fixture
async def stored_leads(client, site) -> None:
    await publish(client, site.secret_key, ACTIVE)
    events = []
    for n in range(VISITORS):
        events += views(f"v{n}", n + 1)
        if n % 4 == 3:
            events.append(
                {
                    "type": "track",
                    "event": "Unsubscribed",
                    "anonymousId": f"v{n}",
                    "timestamp": at(30),
                }
            )
    await send(client, site, *events)


def context_of(app):
    return app.state.background.context


def config(settings, **changes):
    return dataclasses.replace(preview_jobs.PreviewJobConfig.from_settings(settings), **changes)


async def start(client, site, document=DRAFT, **params):
    params.setdefault("at", AT)
    return await client.post(
        "/v1/rules/preview/jobs", headers=bearer(site.secret_key), json=document, params=params
    )


async def follow(client, site, url):
    r = await client.get(url, headers=bearer(site.secret_key))
    assert r.status_code == 200, r.text
    return r.json()


async def claim(app, settings, now=None):
    lease = timedelta(seconds=settings.scoring.rescore_lease_seconds)
    return await preview_jobs.claim_job(context_of(app).engine, now or utcnow(), lease)


@pytest.mark.parametrize("processes", [0, 2])
@pytest.mark.parametrize("limit", [2, 100])
async def test_a_job_answers_what_the_synchronous_preview_answers(
    app, client, settings, site, stored_leads, processes, limit
):
    expected = await client.post(
        "/v1/rules/preview",
        headers=bearer(site.secret_key),
        json=DRAFT,
        params={"at": AT, "limit": limit},
    )
    assert expected.status_code == 200, expected.text

    r = await start(client, site, limit=limit)

    assert r.status_code == 202, r.text
    started = r.json()
    assert r.headers["location"] == started["url"] == f"/v1/rules/preview/jobs/{started['id']}"
    assert (started["status"], started["processed"], started["total"]) == ("pending", 0, 12)
    assert started["result"] is None
    job = await claim(app, settings)
    assert job is not None
    # Batches of 2 leads: with 2 processes, two ranges of 6 leads, merged in id order.
    outcome = await preview_jobs.run_job(
        context_of(app).engine,
        job,
        config(settings, batch_leads=2, processes=processes),
        utcnow,
        settings=settings,
    )

    assert outcome == "done"
    done = await follow(client, site, started["url"])
    assert (done["status"], done["processed"], done["total"], done["percent"]) == (
        "done",
        12,
        12,
        100.0,
    )
    assert done["finished_at"]
    assert done["result"] == expected.json()
    assert done["result"]["changed"] > limit or limit == 100  # the truncation is exercised
    # Who moves is part of what is compared: the largest moves, each with its rules.
    changes = done["result"]["changes"]
    assert all(c["rules"] and c["label"] == c["lead_id"][:8] for c in changes)
    moved = [abs(c["score_draft"] - c["score_active"]) for c in changes]
    assert moved == sorted(moved, reverse=True)
    assert sum(done["result"]["moves"].values()) == done["result"]["changed"]


async def test_progress_grows_batch_by_batch(app, client, settings, site, stored_leads):
    url = (await start(client, site)).json()["url"]
    job = await claim(app, settings)
    seen: list[tuple[str, int, int]] = []

    async def observe() -> None:
        body = await follow(client, site, url)
        seen.append((body["status"], body["processed"], body["total"]))

    outcome = await preview_jobs.run_job(
        context_of(app).engine,
        job,
        config(settings, batch_leads=5, processes=0),
        utcnow,
        on_batch=observe,
    )

    assert outcome == "done"
    assert seen == [("running", 5, 12), ("running", 10, 12), ("running", 12, 12)]


async def test_a_running_job_cancelled_stops_after_the_batch_in_hand(
    app, client, settings, site, stored_leads
):
    url = (await start(client, site)).json()["url"]
    job = await claim(app, settings)
    answers: list[httpx.Response] = []

    async def cancel_once() -> None:
        if not answers:
            answers.append(await client.post(f"{url}/cancel", headers=bearer(site.secret_key)))

    outcome = await preview_jobs.run_job(
        context_of(app).engine,
        job,
        config(settings, batch_leads=2, processes=0),
        utcnow,
        on_batch=cancel_once,
    )

    assert answers[0].status_code == 200, answers[0].text
    asked = answers[0].json()
    assert (asked["status"], asked["cancel_requested"]) == ("running", True)
    assert outcome == "cancelled"
    body = await follow(client, site, url)
    assert (body["status"], body["processed"], body["result"]) == ("cancelled", 2, None)
    assert body["finished_at"]
    assert await claim(app, settings) is None  # nothing left to run


async def test_a_pending_job_is_cancelled_at_once_and_a_finished_one_cannot_be(
    app, client, settings, site, stored_leads
):
    url = (await start(client, site)).json()["url"]

    for _ in range(2):  # cancelling again changes nothing
        r = await client.post(f"{url}/cancel", headers=bearer(site.secret_key))
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["cancel_requested"]) == ("cancelled", True)
    assert await claim(app, settings) is None

    done_url = (await start(client, site)).json()["url"]
    assert await preview_jobs.run_next_job(context_of(app)) == "done"
    r = await client.post(f"{done_url}/cancel", headers=bearer(site.secret_key))
    assert r.status_code == 409
    assert r.json()["code"] == "job_finished"
    assert (await follow(client, site, done_url))["status"] == "done"


async def test_a_job_whose_worker_died_is_taken_over_when_its_lease_expires(
    app, client, settings, site, stored_leads
):
    url = (await start(client, site)).json()["url"]
    lease = timedelta(seconds=settings.scoring.rescore_lease_seconds)
    begin = utcnow()
    dead = await claim(app, settings, begin)  # ...and never runs it
    assert dead is not None
    assert dead.attempts == 1

    assert await claim(app, settings, begin + lease - timedelta(seconds=1)) is None
    later = begin + lease + timedelta(seconds=1)
    taken = await claim(app, settings, later)
    assert taken is not None
    assert taken.attempts == 2
    cfg = config(settings, batch_leads=5, processes=0)
    assert await preview_jobs.run_job(context_of(app).engine, taken, cfg, lambda: later) == "done"
    result = (await follow(client, site, url))["result"]
    assert result["leads"] == 12

    # The first worker, back to life, finds the job is no longer its own and stops.
    assert await preview_jobs.run_job(context_of(app).engine, dead, cfg, lambda: later) == (
        "stopped"
    )
    after = await follow(client, site, url)
    assert (after["status"], after["result"]) == ("done", result)


async def test_the_worker_loop_runs_a_job_started_by_a_large_sites_preview(
    app, client, settings, site, stored_leads
):
    settings.scoring.preview_sync_max_leads = 11  # the site has 12 leads
    r = await client.post(
        "/v1/rules/preview", headers=bearer(site.secret_key), json=DRAFT, params={"at": AT}
    )
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"

    await preview_jobs.preview_jobs_loop(context_of(app), asyncio.Event(), iterations=1)

    body = await follow(client, site, r.json()["url"])
    assert body["status"] == "done"
    assert (body["result"]["leads"], body["result"]["active_version"]) == (12, 2)


async def test_unknown_and_other_sites_jobs_are_not_found(
    app, client, session, settings, site, stored_leads
):
    other = await create_site(session, "Other shop")
    url = (await start(client, site)).json()["url"]
    unknown = "/v1/rules/preview/jobs/00000000-0000-4000-8000-000000000000"
    for path in (unknown, url):
        for method, target in (("GET", path), ("POST", f"{path}/cancel")):
            r = await client.request(method, target, headers=bearer(other.secret_key))
            assert r.status_code == 404, (method, target)
            assert r.json()["code"] == "not_found"
            assert set(r.json()) == {"code", "message", "details"}
    # The other site's cancel changed nothing.
    assert (await follow(client, site, url))["status"] == "pending"


async def test_an_invalid_draft_is_refused_before_a_job_is_made(
    app, client, settings, site, stored_leads
):
    draft = views_rule_set()
    draft["behaviour"][0]["frequency"] = "sometimes"
    r = await start(client, site, draft)
    assert r.status_code == 422
    assert r.json()["code"] == "invalid_rule_set"
    assert await claim(app, settings) is None


async def test_jobs_finished_over_a_day_ago_go_when_a_new_one_is_made(
    app, client, session, settings, site, stored_leads
):
    old = (await start(client, site)).json()["url"]
    recent = (await start(client, site)).json()["url"]
    now = utcnow()
    for url, finished in ((old, now - timedelta(hours=25)), (recent, now - timedelta(hours=23))):
        await session.execute(
            update(PreviewJob)
            .where(PreviewJob.id == uuid.UUID(url.rsplit("/", 1)[1]))
            .values(status="done", finished_at=finished)
        )
    await session.commit()

    assert (await start(client, site)).status_code == 202

    r = await client.get(old, headers=bearer(site.secret_key))
    assert r.status_code == 404
    assert (await follow(client, site, recent))["status"] == "done"


async def test_a_jobs_result_carries_the_drafts_warnings(app, client, settings, site, stored_leads):
    far_away = {
        "id": "far-away",
        "type": "match",
        "field": "city",
        "weight": -10,
        "options": [{"values": ["Vladivostok"], "coefficient": 1}],
    }
    r = await start(client, site, {**DRAFT, "fit": [far_away]})
    assert r.status_code == 202, r.text
    job = await claim(app, settings)
    assert job is not None
    assert (
        await preview_jobs.run_job(context_of(app).engine, job, config(settings), utcnow) == "done"
    )

    done = await follow(client, site, r.json()["url"])
    assert [(w["rule"], w["code"]) for w in done["result"]["warnings"]] == [
        ("far-away", "negative_weight")
    ]
