"""A lead that turns hot gets an owner at once: round-robin among the managers on duty now,
fair over the day, skipping those off duty, outside their hours or at their limit; nobody on
duty leaves it unowned unless someone is on call; two transactions assigning for one site at
once never give both leads to the same person (PostgreSQL's per-site lock)."""

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, text

from app.domain.lead_rows import lead_row
from app.domain.tables import Lead, LeadIdentity
from app.team import assignment
from tests.factories import send, without_ladder
from tests.helpers import eventually
from tests.leads.helpers import cold, hot
from tests.team.helpers import ALL_WEEK, NEVER, awake_zone, make_user


async def on_duty(session, site, email: str, **fields: Any):
    fields = {"working_hours": ALL_WEEK, "time_zone": awake_zone(), **fields}
    return await make_user(session, site, "manager", email, **fields)


async def owners_by_visitor(session, site) -> dict[str, uuid.UUID | None]:
    rows = await session.execute(
        select(LeadIdentity.value, Lead.owner_id)
        .join(Lead, Lead.id == LeadIdentity.lead_id)
        .where(LeadIdentity.site_id == site.site.id, LeadIdentity.kind == "anonymous")
    )
    return {r.value: r.owner_id for r in rows}


async def test_round_robin_is_fair_and_skips_who_cannot_take_a_lead(client, session, site):
    await without_ladder(client, site)  # no handovers: the owners are round-robin's
    anna = await on_duty(session, site, "anna@shop.example")
    boris = await on_duty(session, site, "boris@shop.example")
    limited = await on_duty(session, site, "lim@shop.example", max_open_hot_leads=1)
    off = await on_duty(session, site, "off@shop.example", on_duty=False)
    asleep = await on_duty(session, site, "asleep@shop.example", working_hours=NEVER)
    # An admin in hours is no manager: round-robin never picks them.
    admin = await make_user(
        session, site, "admin", "admin@shop.example", working_hours=ALL_WEEK,
        time_zone=awake_zone(),
    )  # fmt: skip
    for n in range(7):
        await send(client, site, *hot(f"v{n}"))
    owners = await owners_by_visitor(session, site)
    assert len(owners) == 7
    assert None not in owners.values()
    counts = Counter(owners.values())
    # The first three went one each; then `limited` was at its limit: the other two alternate.
    assert counts == {anna.id: 3, boris.id: 3, limited.id: 1}
    assert not {off.id, asleep.id, admin.id} & set(counts)


async def test_a_lead_that_is_won_frees_a_place_under_the_limit(client, session, site):
    await without_ladder(client, site)  # no handovers: the owners are assignment's
    limited = await on_duty(session, site, "lim@shop.example", max_open_hot_leads=1)
    await send(client, site, *hot("a"))
    await send(client, site, *hot("b"))  # `limited` is full: nobody else, unowned
    owners = await owners_by_visitor(session, site)
    assert owners == {"a": limited.id, "b": None}
    lead_a = await session.scalar(select(Lead).where(Lead.owner_id == limited.id))
    assert lead_a is not None
    r = await client.patch(
        f"/v1/leads/{lead_a.id}", json={"status": "won"},
        headers={"Authorization": f"Bearer {site.secret_key}"},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    await send(client, site, *hot("c"))
    assert (await owners_by_visitor(session, site))["c"] == limited.id


async def test_nobody_on_duty_leaves_the_lead_unowned(client, session, site):
    await without_ladder(client, site)  # no handovers: the owners are assignment's
    await on_duty(session, site, "off@shop.example", on_duty=False)
    await on_duty(session, site, "asleep@shop.example", working_hours=NEVER)
    await send(client, site, *hot("v"))
    assert await owners_by_visitor(session, site) == {"v": None}


async def test_with_nobody_on_duty_the_person_on_call_gets_it(client, session, site):
    await without_ladder(client, site)  # no handovers: the owners are assignment's
    await on_duty(session, site, "asleep@shop.example", working_hours=NEVER)
    # On call: whatever their hours and switch (they are called because nobody works now).
    on_call = await make_user(
        session, site, "admin", "boss@shop.example", working_hours=NEVER, on_call=True
    )
    await send(client, site, *hot("v"))
    assert await owners_by_visitor(session, site) == {"v": on_call.id}


async def test_the_person_on_call_waits_while_a_manager_is_on_duty(client, session, site):
    await without_ladder(client, site)  # no handovers: the owners are assignment's
    await make_user(session, site, "admin", "boss@shop.example", on_call=True)
    manager = await on_duty(session, site, "anna@shop.example")
    await send(client, site, *hot("v"))
    assert await owners_by_visitor(session, site) == {"v": manager.id}


async def test_two_transactions_assigning_at_once_never_pick_the_same_person(
    client, session, site, db_engine
):
    if db_engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: no two assignments overlap")
    await send(client, site, *cold("a"), *cold("b"))
    first = await on_duty(session, site, "anna@shop.example")
    second = await on_duty(session, site, "boris@shop.example")
    rows = (await session.execute(select(Lead.__table__).where(Lead.site_id == site.site.id))).all()
    a, b = (lead_row(r._mapping) for r in rows)
    now = datetime.now(UTC)
    async with db_engine.connect() as one, db_engine.connect() as two:
        await one.begin()
        took = await assignment.assign_hot(one, [a], now)
        await two.begin()
        # The second reads the counts only once the first commits: without the lock it would
        # see nobody assigned yet and pick the same person (the tie-break is the same).
        racing = asyncio.create_task(assignment.assign_hot(two, [b], now))

        async def waiting_for_the_lock() -> bool:
            count = await session.scalar(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            )
            return bool(count)

        await eventually(waiting_for_the_lock)
        assert not racing.done()
        await one.commit()
        got = await racing
        await two.commit()
    assert {took[a["id"]].id, got[b["id"]].id} == {first.id, second.id}
    owners = await owners_by_visitor(session, site)
    assert {owners["a"], owners["b"]} == {first.id, second.id}


async def test_an_admin_sets_the_limit_and_on_call_through_the_api(client, session, site):
    manager = await make_user(session, site, "manager", "anna@shop.example")
    url, key = f"/v1/users/{manager.id}", {"Authorization": f"Bearer {site.secret_key}"}
    r = await client.patch(url, json={"max_open_hot_leads": 2, "on_call": True}, headers=key)
    assert r.status_code == 200, r.text
    assert (r.json()["max_open_hot_leads"], r.json()["on_call"]) == (2, True)
    r = await client.patch(url, json={"max_open_hot_leads": 0}, headers=key)  # 0: no limit
    assert r.status_code == 200, r.text
    assert (r.json()["max_open_hot_leads"], r.json()["on_call"]) == (None, True)
