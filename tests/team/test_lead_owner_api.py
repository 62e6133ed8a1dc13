"""The owner through the leads API: a manager claims an unowned lead (409 when someone else
owns it) and hands their own over; an admin reassigns any; the secret key acts as an admin
but is nobody, so it cannot claim nor ask for `owner=me`. The owner is on the list and the
card, and `owner=me|none|<id>` filters the list."""

from typing import Any

import pytest

from tests.factories import bearer, send, without_ladder
from tests.leads.helpers import hot, id_of
from tests.team.helpers import make_token, make_user, pat


@pytest.fixture
async def team(client, session, site):
    """Two unowned hot leads, "v" and "w" (they turned hot before anybody joined: later, in
    the managers' working hours, the round-robin would give them an owner), two managers, an
    admin. No escalation ladder: its steps, due at once for leads that turned hot at `T0`,
    would hand a lead over while a test claims it."""
    await without_ladder(client, site)
    await send(client, site, *hot("v"), *hot("w"))
    people: dict[str, tuple[Any, dict[str, str]]] = {}
    for key, role, name in (("m1", "manager", "Anna"), ("m2", "manager", "Boris")):
        user = await make_user(session, site, role, f"{key}@shop.example", name=name)
        people[key] = (user.id, pat(await make_token(session, user)))
    admin = await make_user(session, site, "admin", "admin@shop.example")
    people["admin"] = (admin.id, pat(await make_token(session, admin)))
    people["key"] = (None, bearer(site.secret_key))
    return await id_of(session, site, "v"), people


def owner_of(card: dict) -> str | None:
    return card["owner"]["id"] if card["owner"] else None


async def test_a_manager_claims_an_unowned_lead_once(client, team):
    lead, people = team
    (m1, h1), (_, h2) = people["m1"], people["m2"]
    r = await client.post(f"/v1/leads/{lead}/claim", headers=h1)
    assert r.status_code == 200, r.text
    assert r.json()["owner"] == {"id": str(m1), "name": "Anna", "email": "m1@shop.example"}
    assert r.json()["owner_assigned_at"] is not None
    assert (await client.post(f"/v1/leads/{lead}/claim", headers=h1)).status_code == 200
    taken = await client.post(f"/v1/leads/{lead}/claim", headers=h2)
    assert taken.status_code == 409
    assert taken.json()["code"] == "lead_owned"
    card = (await client.get(f"/v1/leads/{lead}", headers=h2)).json()
    assert owner_of(card) == str(m1)


async def test_the_secret_key_is_nobody_to_claim_for(client, team):
    lead, people = team
    r = await client.post(f"/v1/leads/{lead}/claim", headers=people["key"][1])
    assert r.status_code == 403
    assert r.json()["code"] == "person_required"


async def test_only_the_owner_hands_a_lead_over_to_a_person_of_the_site(
    client, session, other_site, team
):
    lead, people = team
    (m1, h1), (m2, h2) = people["m1"], people["m2"]
    await client.post(f"/v1/leads/{lead}/claim", headers=h1)
    r = await client.post(f"/v1/leads/{lead}/handover", json={"user_id": str(m1)}, headers=h2)
    assert r.status_code == 403
    assert r.json()["code"] == "not_owner"
    stranger = await make_user(session, other_site, "manager", "x@other.example")
    r = await client.post(
        f"/v1/leads/{lead}/handover", json={"user_id": str(stranger.id)}, headers=h1
    )
    assert r.status_code == 422
    assert r.json()["details"][0]["loc"] == ["body", "user_id"]
    r = await client.post(f"/v1/leads/{lead}/handover", json={"user_id": str(m2)}, headers=h1)
    assert r.status_code == 200, r.text
    assert owner_of(r.json()) == str(m2)


@pytest.mark.parametrize("who", ["admin", "key"])
async def test_an_admin_reassigns_any_lead_or_leaves_it_unowned(client, team, who):
    lead, people = team
    (_, h1), (m2, _) = people["m1"], people["m2"]
    await client.post(f"/v1/leads/{lead}/claim", headers=h1)
    headers = people[who][1]
    r = await client.put(f"/v1/leads/{lead}/owner", json={"user_id": str(m2)}, headers=headers)
    assert r.status_code == 200, r.text
    assert owner_of(r.json()) == str(m2)
    r = await client.put(f"/v1/leads/{lead}/owner", json={"user_id": None}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["owner"] is None
    assert r.json()["owner_assigned_at"] is None


async def test_a_manager_cannot_reassign(client, team):
    lead, people = team
    (m1, h1) = people["m1"]
    r = await client.put(f"/v1/leads/{lead}/owner", json={"user_id": str(m1)}, headers=h1)
    assert r.status_code == 403
    assert r.json()["code"] == "admin_only"


async def test_the_list_shows_and_filters_by_owner(client, session, site, team):
    lead, people = team
    (m1, h1), (_, h2) = people["m1"], people["m2"]
    other = await id_of(session, site, "w")  # a second lead, nobody's
    await client.post(f"/v1/leads/{lead}/claim", headers=h1)

    async def listed(headers, **params):
        r = await client.get("/v1/leads", headers=headers, params=params)
        assert r.status_code == 200, r.text
        return {item["id"]: owner_of(item) for item in r.json()["data"]}

    assert await listed(h1) == {lead: str(m1), other: None}
    assert await listed(h1, owner="me") == {lead: str(m1)}
    assert await listed(h2, owner="me") == {}
    assert await listed(h2, owner="none") == {other: None}
    assert await listed(people["key"][1], owner=str(m1)) == {lead: str(m1)}
    r = await client.get("/v1/leads", headers=people["key"][1], params={"owner": "me"})
    assert r.status_code == 422
    assert r.json()["details"][0]["loc"] == ["query", "owner"]
    r = await client.get("/v1/leads", headers=h1, params={"owner": "someone"})
    assert r.status_code == 422
