"""anonymousId and userId resolve to one lead; identify and alias merge leads, keeping history."""

import pytest
from sqlalchemy import func, select

from app.domain.tables import Event, Lead
from tests.factories import basic_auth, lead_by_anonymous_id, stored_events, track


async def post(client, site, path, body):
    r = await client.post(path, auth=basic_auth(site.write_key), json=body)
    assert r.status_code == 200, r.text
    return r.json()


async def live_leads(session, site_id):
    session.expire_all()
    return list(
        await session.scalars(
            select(Lead).where(Lead.site_id == site_id, Lead.merged_into_id.is_(None))
        )
    )


async def test_one_anonymous_visitor_is_one_lead(client, session, site):
    for i in range(3):
        await post(client, site, "/v1/page", {"anonymousId": "anon-1", "messageId": f"p{i}"})
    [lead] = await live_leads(session, site.site.id)
    assert lead.page_views == 3
    events = await stored_events(session, site.site.id)
    assert {e.lead_id for e in events} == {lead.id}


async def test_identify_attaches_traits_and_contacts(client, session, site):
    await post(client, site, "/v1/page", {"anonymousId": "anon-1"})
    await post(
        client,
        site,
        "/v1/identify",
        {
            "anonymousId": "anon-1",
            "traits": {
                "email": "olga@example.com",
                "phone": "+7 900 000-00-00",
                "name": "Olga",
                "telegram": "@olga",
                "address": {"city": "Kazan"},
            },
        },
    )
    lead = await lead_by_anonymous_id(session, site.site.id, "anon-1")
    assert lead.identified is True
    assert lead.contacts == {
        "email": "olga@example.com",
        "phone": "+7 900 000-00-00",
        "telegram": "@olga",
    }
    assert lead.city == "Kazan"
    assert lead.traits["name"] == "Olga"


async def test_identify_with_both_ids_merges_two_leads_keeping_both_histories(
    client, session, site
):
    # The same person: anonymous on the phone, logged in on the laptop.
    await post(
        client,
        site,
        "/v1/track",
        track("phone-anon", "Product Viewed", properties={"category": "fridges"}),
    )
    await post(
        client,
        site,
        "/v1/track",
        {
            "type": "track",
            "event": "Product Viewed",
            "userId": "u-42",
            "properties": {"category": "ovens"},
        },
    )
    assert len(await live_leads(session, site.site.id)) == 2

    await post(
        client,
        site,
        "/v1/identify",
        {"anonymousId": "phone-anon", "userId": "u-42", "traits": {"email": "a@b.c"}},
    )

    [lead] = await live_leads(session, site.site.id)
    assert lead.user_id == "u-42"
    assert lead.interests == {"fridges": 1, "ovens": 1}
    assert lead.contacts == {"email": "a@b.c"}
    assert lead.events_count == 3
    events = await stored_events(session, site.site.id)
    assert len(events) == 3
    assert {e.lead_id for e in events} == {lead.id}
    # The merged lead still exists, pointing at the survivor.
    merged = await session.scalar(select(Lead).where(Lead.merged_into_id == lead.id))
    assert merged is not None


async def test_alias_merges_previous_id_into_the_user(client, session, site):
    await post(client, site, "/v1/page", {"anonymousId": "anon-9"})
    await post(client, site, "/v1/page", {"userId": "user-9"})
    await post(client, site, "/v1/alias", {"previousId": "anon-9", "userId": "user-9"})
    [lead] = await live_leads(session, site.site.id)
    assert lead.page_views == 2
    assert lead.user_id == "user-9"
    # Either id now finds the lead.
    await post(client, site, "/v1/page", {"anonymousId": "anon-9"})
    await post(client, site, "/v1/page", {"userId": "user-9"})
    [lead] = await live_leads(session, site.site.id)
    assert lead.page_views == 4


async def test_alias_needs_previous_id_and_user_id(client, site):
    r = await client.post("/v1/alias", auth=basic_auth(site.write_key), json={"userId": "u"})
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_event"
    assert "previousId" in r.json()["message"]


async def test_merges_within_one_batch(client, session, site):
    body = {
        "batch": [
            {"type": "page", "anonymousId": "x1"},
            {"type": "page", "userId": "ux"},
            {"type": "identify", "anonymousId": "x1", "userId": "ux", "traits": {"phone": "1"}},
            {"type": "page", "anonymousId": "x1"},
        ]
    }
    assert (await post(client, site, "/v1/batch", body))["accepted"] == 4
    [lead] = await live_leads(session, site.site.id)
    assert lead.page_views == 3
    assert lead.contacts == {"phone": "1"}


async def test_a_stored_lead_merges_into_a_user_first_seen_in_the_same_batch(client, session, site):
    await post(client, site, "/v1/page", {"anonymousId": "old-visitor", "messageId": "p0"})
    body = {
        "batch": [
            {"type": "page", "userId": "new-user", "messageId": "p1"},
            {"type": "identify", "anonymousId": "old-visitor", "userId": "new-user"},
        ]
    }
    assert (await post(client, site, "/v1/batch", body))["accepted"] == 2
    [lead] = await live_leads(session, site.site.id)
    assert (lead.user_id, lead.page_views) == ("new-user", 2)
    events = await stored_events(session, site.site.id)
    assert {e.lead_id for e in events} == {lead.id}
    assert (await lead_by_anonymous_id(session, site.site.id, "old-visitor")).id == lead.id


async def test_three_leads_chain_into_one(client, session, site):
    await post(client, site, "/v1/page", {"anonymousId": "d1"})
    await post(client, site, "/v1/page", {"anonymousId": "d2"})
    await post(client, site, "/v1/identify", {"anonymousId": "d1", "userId": "person"})
    await post(client, site, "/v1/identify", {"anonymousId": "d2", "userId": "person"})
    [lead] = await live_leads(session, site.site.id)
    assert lead.page_views == 2
    events = (
        await session.execute(
            select(func.count()).select_from(Event).where(Event.lead_id == lead.id)
        )
    ).scalar()
    assert events == 4


@pytest.mark.parametrize("call", ["screen", "group"])
async def test_screen_and_group_calls_are_stored(client, session, site, call):
    body = {"anonymousId": "a", "name": "Checkout", "groupId": "company-1"}
    await post(client, site, f"/v1/{call}", body)
    [event] = await stored_events(session, site.site.id)
    assert event.type == call
