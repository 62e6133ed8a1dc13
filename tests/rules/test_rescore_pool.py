"""A re-scoring job over a pool of processes (one id range each) writes what the job run in
the worker's loop writes, and what replaying each lead on its own gives; a job taken over
from its owner gets nothing more from it, and a worker shutting down gives its job back."""

import asyncio
import copy
import dataclasses
import functools
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import select, update

from app.domain.lead_rows import lead_row
from app.domain.tables import Lead
from app.scoring import engine, rescoring
from app.scoring.models import RescoreJob
from app.scoring.scorer import rescore_from_history, rule_set_for_version
from tests.factories import T0, at, bearer, send
from tests.rules.helpers import leads_of, publish, views, views_rule_set

RULE_SET = views_rule_set(
    points=10,
    warm=30,
    hot=45,
    behaviour=[
        {"id": "pricing", "event": "page", "points": 15, "frequency": "once_per_visit",
         "conditions": [{"field": "url", "op": "contains", "value": "/pricing"}]},
    ],
    decay={"half_life": "3d"},
)  # fmt: skip
NOW = T0 + timedelta(hours=12)  # after every event; decay has begun
# What a job writes of a lead (contact_by: by the webhook consumer, for leads that turned hot).
WRITTEN = ("score", "temperature", "score_state", "next_check_at", "rule_set_version")
LEADS = 14


def fixed(now: datetime) -> Any:
    """A clock that pickles (a pool's processes get the job's clock)."""
    return functools.partial(datetime.fromisoformat, now.isoformat())


@pytest.fixture
async def leads(client, site, settings) -> None:
    events: list[dict[str, Any]] = []
    for n in range(LEADS):
        visitor = f"w{n}"
        events += views(visitor, n % 6 + 1, start=n * 30)
        page: dict[str, Any] = {"type": "page", "anonymousId": visitor, "timestamp": at(n * 20)}
        page["context"] = {"page": {"url": "https://shop.example/pricing"}}
        events.append(page)
    await send(client, site, *events)
    settings.scoring.rescore_sync_max_leads = 0
    settings.scoring.rescore_batch_leads = 3


def context_of(app):
    return app.state.background.context


def config(settings, processes: int) -> rescoring.RescoreConfig:
    return dataclasses.replace(rescoring.RescoreConfig.from_settings(settings), processes=processes)


async def claim(app, settings, now: datetime) -> RescoreJob:
    job = await rescoring.claim_job(context_of(app).engine, now, config(settings, 0).lease)
    assert job is not None
    return job


async def rows(session, site_id) -> dict[Any, tuple[Any, ...]]:
    return {
        lead.id: (*(getattr(lead, c) for c in WRITTEN), lead.contact_by)
        for lead in await leads_of(session, site_id)
        if lead.merged_into_id is None
    }


async def as_before_the_job(session, site_id) -> None:
    """The leads as ingestion left them, but cold and never hot: every lead the job makes
    hot turns hot, so the webhook consumer sets when first contact is due."""
    await session.execute(
        update(Lead)
        .where(Lead.site_id == site_id)
        .values(rule_set_version=1, score=0, temperature="cold", next_check_at=None)
        .values(contact_by=None)
    )
    await session.commit()


async def job_row(session, job_id) -> RescoreJob:
    session.expire_all()
    job = await session.scalar(select(RescoreJob).where(RescoreJob.id == job_id))
    assert job is not None
    return job


async def run(app, settings, job, processes: int, **kwargs: Any) -> str:
    return await rescoring.run_job(
        context_of(app).engine,
        job,
        config(settings, processes),
        kwargs.pop("clock", fixed(NOW)),
        settings=settings,
        lead_changes=context_of(app).lead_changes,
        **kwargs,
    )


async def test_a_job_in_processes_writes_what_the_loop_and_each_lead_alone_give(
    app, client, session, settings, site, leads
):
    body = await publish(client, site.secret_key, RULE_SET)
    await as_before_the_job(session, site.site.id)
    job = await claim(app, settings, NOW)

    assert await run(app, settings, job, processes=2) == "done"

    in_processes = await rows(session, site.site.id)
    done = await job_row(session, job.id)
    assert (done.status, done.processed, done.total) == ("done", LEADS, LEADS)
    view = (await client.get(body["job"]["url"], headers=bearer(site.secret_key))).json()
    assert (view["processed"], view["percent"]) == (LEADS, 100.0)
    assert {r[4] for r in in_processes.values()} == {2}
    temperatures = {r[1] for r in in_processes.values()}
    assert temperatures == {"cold", "warm", "hot"}
    # The webhook consumer ran in the processes: leads that turned hot are due for contact.
    assert all((r[5] is not None) == (r[1] == "hot") for r in in_processes.values())

    # The same job again in the worker's loop, from the leads as they were before it.
    await as_before_the_job(session, site.site.id)
    await session.execute(
        update(RescoreJob).where(RescoreJob.id == job.id).values(status="pending")
    )
    await session.commit()
    again = await claim(app, settings, NOW + timedelta(seconds=1))
    assert await run(app, settings, again, processes=0) == "done"

    assert await rows(session, site.site.id) == in_processes
    compiled = engine.compile_rule_set(rule_set_for_version(RULE_SET, 2))
    visit_timeout = timedelta(minutes=settings.ingestion.visit_timeout_minutes)
    async with context_of(app).engine.connect() as conn:
        for lead in await leads_of(session, site.site.id):
            if lead.merged_into_id is not None:
                continue
            expected = copy.deepcopy(
                lead_row({c.key: getattr(lead, c.key) for c in Lead.__table__.columns})
            )
            await rescore_from_history(conn, expected, compiled, visit_timeout, NOW)
            alone = cast(dict[str, Any], expected)
            assert tuple(alone[c] for c in WRITTEN) == in_processes[lead.id][:5]


async def test_a_stale_owner_writes_nothing_after_its_job_was_taken_over(
    app, client, session, settings, site, leads
):
    await publish(client, site.secret_key, RULE_SET)
    lease = config(settings, 0).lease
    dead = await claim(app, settings, NOW)  # its worker stalls past its lease
    later = NOW + lease + timedelta(seconds=1)
    taken = await claim(app, settings, later)
    assert taken.id == dead.id
    assert taken.started_at != dead.started_at

    # Back to life, the first owner's processes write no batch: none is theirs to commit.
    assert await run(app, settings, dead, processes=2) == "stopped"
    assert {r[4] for r in (await rows(session, site.site.id)).values()} == {1}
    assert (await job_row(session, dead.id)).processed == 0

    assert await run(app, settings, taken, processes=2, clock=fixed(later)) == "done"
    assert {r[4] for r in (await rows(session, site.site.id)).values()} == {2}


@pytest.mark.parametrize("processes", [0, 2])
async def test_a_worker_shutting_down_gives_its_job_back_to_pending(
    app, client, session, settings, site, leads, processes
):
    await publish(client, site.secret_key, RULE_SET)
    job = await claim(app, settings, NOW)
    stop = asyncio.Event()
    calls = 0

    def clock() -> datetime:  # the worker is told to stop during the first batch
        nonlocal calls
        calls += 1
        if calls == 1:
            stop.set()
        return NOW

    if processes:
        stop.set()
    outcome = await run(
        app, settings, job, processes, stop=stop, clock=fixed(NOW) if processes else clock
    )

    assert outcome == "stopped"
    pending = await job_row(session, job.id)
    assert (pending.status, pending.lease_until, pending.finished_at) == ("pending", None, None)
    processed = pending.processed
    written = [r for r in (await rows(session, site.site.id)).values() if r[4] == 2]
    # In the loop the batch in hand commits; processes find the job given back and write none.
    assert len(written) == (0 if processes else 3)
    assert processed == len(written)
    assert await rescoring.rescore_next_job(context_of(app), clock=fixed(NOW)) == "done"
    assert {r[4] for r in (await rows(session, site.site.id)).values()} == {2}
