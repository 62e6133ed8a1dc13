"""Erasing a person (`DELETE /v1/people`): everything about them goes in one transaction,
across merged leads, committed before the 2xx; other people stay; their identifiers are
suppressed, so that later events carrying them are dropped (and counted)."""

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.config import Settings
from app.db import make_sessionmaker, utcnow, writer
from app.domain.privacy import Suppression
from app.domain.tables import Event, Lead, LeadIdentity
from app.ingestion.pipeline import IngestPipeline
from app.leads import rollup
from app.privacy.erasure import erase_person
from app.webhooks.models import LeadContact, LeadTimer, WebhookDelivery, WebhookMessage
from tests.factories import at, basic_auth, bearer, lead_by_anonymous_id, send, track
from tests.webhooks.helpers import add_endpoint

ZERO = {
    "leads": 0,
    "events": 0,
    "identities": 0,
    "contacts": 0,
    "timers": 0,
    "webhook_messages": 0,
    "repairs": 0,
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # No loops: nothing but the requests writes (no delivery to the endpoint's fake host).
    return settings.model_copy(update={"run_background": False})


async def erase(client: Any, site: Any, **person: str) -> httpx.Response:
    return await client.request(
        "DELETE", "/v1/people", headers=bearer(site.secret_key), json=person
    )


async def count(session: Any, model: Any, *where: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def a_merged_hot_person(client: Any, site: Any, session: Any) -> None:
    """anon-1 browses and fills a cart; the shop's backend knows user-1 (a lead of its own);
    anon-1 logs in as user-1 (the two leads merge), asks to be called (hot: webhook
    messages, first-contact timers) and is called back (a recorded contact)."""
    await send(
        client,
        site,
        {"type": "page", "anonymousId": "anon-1", "timestamp": at(0), "name": "Fridges"},
        track("anon-1", "Product Added", timestamp=at(1), properties={"sku": "f1", "price": 900}),
    )
    await send(client, site, {"type": "track", "event": "Signed Up", "userId": "user-1"})
    await send(
        client,
        site,
        {
            "type": "identify",
            "anonymousId": "anon-1",
            "userId": "user-1",
            "traits": {"email": "Anna@Example.com", "phone": "+7 900 000-00-01"},
            "timestamp": at(2),
        },
        track("anon-1", "Contact Requested", userId="user-1"),  # now: hot,
    )
    lead = await lead_by_anonymous_id(session, site.site.id, "anon-1")
    assert lead.temperature == "hot"
    r = await client.post(
        f"/v1/leads/{lead.id}/contacts",
        headers=bearer(site.secret_key),
        json={"channel": "phone", "by": "Ivan"},
    )
    assert r.status_code == 201, r.text


async def someone_else(client: Any, site: Any) -> None:
    await send(
        client,
        site,
        track("anon-2", "Product Viewed", timestamp=at(0), properties={"sku": "f2"}),
        {"type": "identify", "anonymousId": "anon-2", "traits": {"email": "boris@example.com"}},
        track("anon-2", "Contact Requested"),
    )


async def test_erasing_across_a_merge_is_committed_and_leaves_others(live_server, session, site):
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        await add_endpoint(client, site, "https://crm.example.com/hooks")
        await a_merged_hot_person(client, site, session)
        await someone_else(client, site)
        survivor = await lead_by_anonymous_id(session, site.site.id, "anon-1")
        person = [
            survivor.id,
            *await session.scalars(select(Lead.id).where(Lead.merged_into_id == survivor.id)),
        ]
        assert len(person) == 2  # the merged lead and its survivor
        other = await lead_by_anonymous_id(session, site.site.id, "anon-2")
        others_events = await count(session, Event, Event.lead_id == other.id)
        others_messages = await count(session, WebhookMessage, WebhookMessage.lead_id == other.id)
        assert others_messages > 0
        person_events = await count(session, Event, Event.lead_id.in_(person))

        r = await erase(client, site, anonymousId="anon-1")

        # The answer came after the commit: a separate connection sees it all gone at once.
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["erased"]["leads"] == 2
        assert answer["erased"]["events"] == person_events == 5
        assert answer["erased"]["identities"] == 2  # anon-1, user-1
        assert answer["erased"]["contacts"] == 1
        assert answer["erased"]["timers"] >= 1
        assert answer["erased"]["webhook_messages"] >= 2  # lead.hot, temperature_changed...
        # anon-1, user-1, the email (the phone is not an identifier).
        assert answer["suppressed_identifiers"] == 3
        assert await count(session, Lead, Lead.id.in_(person)) == 0
        assert await count(session, Event, Event.site_id == site.site.id) == others_events
        assert await count(session, LeadIdentity, LeadIdentity.lead_id.in_(person)) == 0
        assert await count(session, LeadContact) == 0
        assert await count(session, LeadTimer, LeadTimer.lead_id.in_(person)) == 0
        assert await count(session, WebhookMessage) == others_messages
        assert await count(session, WebhookDelivery) == others_messages  # one endpoint
        # Only hashes are kept: no suppression holds an identifier in clear.
        hashes = list(await session.scalars(select(Suppression.hash)))
        assert len(hashes) == 3
        assert not {"anon-1", "user-1", "anna@example.com"} & set(hashes)
        # The other person is whole.
        assert await session.scalar(select(Lead.temperature).where(Lead.id == other.id)) == "hot"

        # Again: nothing left to erase, nothing new to suppress.
        again = await erase(client, site, anonymousId="anon-1")
        assert again.status_code == 200, again.text
        assert again.json() == {"erased": ZERO, "suppressed_identifiers": 0}


@pytest.mark.parametrize(
    ("person", "later"),
    [
        ({"userId": "user-1"}, {"type": "track", "event": "Order Completed", "userId": "user-1"}),
        ({"anonymousId": "anon-1"}, track("anon-1", "Product Viewed")),
        # By email (any case): the person's other ids are suppressed with it.
        ({"email": "  ANNA@example.COM "}, track("anon-1", "Product Viewed")),
        # A new device, but the email in its identify call is suppressed.
        (
            {"userId": "user-1"},
            {
                "type": "identify",
                "anonymousId": "new-device",
                "traits": {"email": "anna@example.com"},
            },
        ),
    ],
    ids=["by-user-id", "by-anonymous-id", "by-email", "email-on-a-new-device"],
)
async def test_a_later_event_of_an_erased_person_is_dropped_and_counted(
    app, client, session, site, person, later
):
    await add_endpoint(client, site, "https://crm.example.com/hooks")
    await a_merged_hot_person(client, site, session)
    await someone_else(client, site)
    r = await erase(client, site, **person)
    assert r.status_code == 200, r.text
    assert r.json()["erased"]["leads"] == 2
    pipeline: IngestPipeline = app.state.ingest_pipeline
    before = pipeline.stats["suppressed_events"]
    stored = await count(session, Event)

    answer = await send(client, site, later, track("anon-3", "Product Viewed"))

    # Answered as accepted (the client must not retry it), but not stored: only anon-3's.
    assert answer["accepted"] == 2
    assert pipeline.stats["suppressed_events"] == before + 1
    assert await count(session, Event) == stored + 1
    assert await count(session, LeadIdentity, LeadIdentity.value == "new-device") == 0
    assert await count(session, LeadIdentity, LeadIdentity.value == "anon-3") == 1


async def test_nobody_by_that_id_is_suppressed_all_the_same(app, client, session, site):
    r = await erase(client, site, userId="never-seen", email="nobody@example.com")
    assert r.status_code == 200, r.text
    assert r.json() == {"erased": ZERO, "suppressed_identifiers": 2}
    await send(client, site, {"type": "identify", "userId": "never-seen"})
    assert await count(session, Event) == 0
    assert app.state.ingest_pipeline.stats["suppressed_events"] == 1


@pytest.mark.parametrize("field", ["userId", "anonymousId", "email"])
async def test_an_identifier_with_a_nul_is_a_422_not_a_500(client, site, field):
    """No stored identifier holds a NUL (ingestion refuses them); PostgreSQL cannot compare one."""
    r = await erase(client, site, **{field: "a\x00b@example.com"})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation_error"


async def test_suppressions_are_per_site(client, session, site, other_site):
    r = await erase(client, site, anonymousId="anon-1")
    assert r.status_code == 200, r.text
    await send(client, other_site, track("anon-1", "Product Viewed"))
    assert await count(session, Event, Event.site_id == other_site.site.id) == 1


async def test_an_event_in_flight_during_the_erasure_is_not_stored(
    app, client, session, site, db_engine
):
    """The erasure holds the person's leads (PostgreSQL: FOR UPDATE; SQLite: the write lock)
    while an event of theirs arrives: whichever order they end in, the event is not kept."""
    await a_merged_hot_person(client, site, session)
    async with make_sessionmaker(writer(db_engine))() as erasing:
        result = await erase_person(erasing, site.site.id, anonymous_id="anon-1")
        assert result.erased.leads == 2
        in_flight = asyncio.create_task(send(client, site, track("anon-1", "Product Viewed")))
        await asyncio.sleep(0.2)  # let it reach the database, where it waits for the erasure
        await erasing.commit()
    answer = await in_flight
    assert answer["accepted"] == 1
    assert await count(session, Event) == 0
    assert await count(session, Lead) == 0
    assert app.state.ingest_pipeline.stats["suppressed_events"] == 1


@pytest.mark.parametrize(
    "body",
    [{}, {"userId": ""}, {"email": "x"}, {"userId": "u", "phone": "+7"}],
    ids=["nothing", "empty-id", "short-email", "unknown-field"],
)
async def test_a_person_must_be_named(client, site, body):
    r = await client.request("DELETE", "/v1/people", headers=bearer(site.secret_key), json=body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation_error"


async def test_erasure_needs_the_secret_key(client, site):
    r = await client.request("DELETE", "/v1/people", json={"userId": "u"})
    assert r.status_code == 401
    r = await client.request(
        "DELETE", "/v1/people", headers=bearer(site.write_key), json={"userId": "u"}
    )
    assert r.status_code == 403
    r = await client.request(
        "DELETE", "/v1/people", auth=basic_auth(site.write_key), json={"userId": "u"}
    )
    assert r.status_code == 401


async def test_the_funnel_no_longer_counts_an_erased_person(client, session, site, db_engine):
    """Also on days already rolled up: the erasure writes the lead's -1 through the funnel's
    triggers, as its reads of the leads no longer see it."""
    await a_merged_hot_person(client, site, session)
    await someone_else(client, site)
    period = {"from": at(days=-1), "to": utcnow().isoformat()}
    await rollup.roll_up(db_engine, utcnow())

    async def funnel_leads() -> int:
        r = await client.get("/v1/stats/funnel", headers=bearer(site.secret_key), params=period)
        assert r.status_code == 200, r.text
        return int(r.json()["leads"])

    assert await funnel_leads() == 2
    r = await erase(client, site, userId="user-1")
    assert r.status_code == 200, r.text
    assert await funnel_leads() == 1
    await rollup.roll_up(db_engine, utcnow())
    assert await funnel_leads() == 1
