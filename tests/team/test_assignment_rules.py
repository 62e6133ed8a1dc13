"""Assignment by the admin's rules: a hot lead matching a rule (city, category of interest, cart
value, source) goes to the rule's people by round-robin among them; a rule whose people cannot
take it passes it on; everything else goes by the site-wide round-robin. The rules' API is the
admins', validated, and never shows another site's rules."""

import uuid
from collections import Counter
from datetime import UTC, datetime

from app.domain.profile import new_profile
from app.team.rules import Rule
from tests.factories import bearer, send, without_ladder
from tests.leads.helpers import event, hot, identify
from tests.team.helpers import make_token, make_user, pat
from tests.team.test_assignment import on_duty, owners_by_visitor


def rule(name: str, user_ids, **conditions) -> dict:
    return {"name": name, "conditions": conditions, "user_ids": [str(u) for u in user_ids]}


async def test_leads_go_by_the_first_matching_rule_then_round_robin(client, session, site):
    await without_ladder(client, site)  # no handovers: the owners are the rules'
    anna = (await on_duty(session, site, "anna@shop.example")).id
    boris = (await on_duty(session, site, "boris@shop.example")).id
    carl = (await on_duty(session, site, "carl@shop.example")).id
    away = (await on_duty(session, site, "away@shop.example", on_duty=False)).id
    headers = bearer(site.secret_key)
    for position, body in enumerate(
        [
            rule("Kazan", [boris], cities=["kazan"]),
            rule("Big fridges", [carl], categories=["fridges"], cart_min=1000),
            rule("Ads, but away", [away], sources=["Google"]),
        ]
    ):
        r = await client.post(
            "/v1/assignment-rules", headers=headers, json={**body, "position": position}
        )
        assert r.status_code == 201, r.text

    def fridge_cart(visitor: str, price: float) -> list[dict]:
        add = event(visitor, "Product Added", 0, product_id="f1", price=price, category="fridges")
        views = [event(visitor, "Product Viewed", 0, product_id="f1", category="fridges")] * 2
        return [*views, add]

    kazan = [
        e for n in range(3) for e in (identify(f"kazan{n}", 0, city="Kazan"), *hot(f"kazan{n}"))
    ]
    await send(client, site, *kazan, *fridge_cart("big", 1500), *hot("big"))
    await send(client, site, *fridge_cart("small", 500), *hot("small"))
    await send(client, site, identify("ad", 0, source="google"), *hot("ad"))
    owners = await owners_by_visitor(session, site)
    assert [owners[f"kazan{n}"] for n in range(3)] == [boris] * 3  # not shared out
    assert owners["big"] == carl
    # Below the cart's range, and a rule whose only person is off duty: round-robin, which
    # evens the day out (anna had none, boris three, carl one).
    assert owners["small"] == anna
    assert owners["ad"] == carl  # as few as anna, and longer ago
    assert Counter(owners.values())[away] == 0


async def test_the_rules_api_is_the_admins_and_validated(client, session, site, other_site):
    anna = (await make_user(session, site, "manager", "anna@shop.example")).id
    stranger = (await make_user(session, other_site, "manager", "x@other.example")).id
    headers = bearer(site.secret_key)
    r = await client.post(
        "/v1/assignment-rules", headers=headers, json=rule("Kazan", [anna], cities=["Kazan"])
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["conditions"]["cities"] == ["Kazan"]
    assert created["user_ids"] == [str(anna)]
    assert created["enabled"] is True
    url = f"/v1/assignment-rules/{created['id']}"
    for body in (
        rule("Range", [anna], cart_min=100, cart_max=50),
        rule("Nobody", []),
        rule("Stranger", [stranger]),
        rule("Empty list", [anna], cities=[]),
        {**rule("Extra", [anna]), "colour": "red"},
    ):
        r = await client.post("/v1/assignment-rules", headers=headers, json=body)
        assert r.status_code == 422, body
        assert r.json()["code"] == "validation_error"
    replaced = rule("Kazan and Samara", [anna], cities=["Kazan", "Samara"], cart_max=10_000)
    r = await client.put(url, headers=headers, json=replaced)
    assert r.status_code == 200, r.text
    conditions = {k: v for k, v in r.json()["conditions"].items() if v is not None}
    assert conditions == {"cities": ["Kazan", "Samara"], "cart_max": 10_000}
    assert [
        x["name"] for x in (await client.get("/v1/assignment-rules", headers=headers)).json()
    ] == ["Kazan and Samara"]
    # Another site's admin sees none of it; a manager reaches none of it.
    other = bearer(other_site.secret_key)
    assert (await client.get(url, headers=other)).status_code == 404
    assert (await client.get("/v1/assignment-rules", headers=other)).json() == []
    manager = pat(
        await make_token(session, await make_user(session, site, "manager", "m@shop.example"))
    )
    assert (await client.get("/v1/assignment-rules", headers=manager)).status_code == 403
    assert (await client.delete(url, headers=headers)).status_code == 204
    assert (await client.get(url, headers=headers)).status_code == 404


def test_a_rule_matches_every_condition_it_gives():
    profile = new_profile(uuid.uuid4(), uuid.uuid4(), datetime(2026, 1, 1, tzinfo=UTC))
    profile["city"] = "Казань"
    profile["interests"] = {"fridges": 3, "tvs": 5}
    profile["cart"] = {"value": 1000.0}
    profile["last_url"] = "https://shop.example/?utm_source=Yandex&x=1"
    user = [str(uuid.uuid4())]

    def matches(**conditions: object) -> bool:
        return Rule.of(uuid.uuid4(), conditions, user).matches(profile)

    assert matches()
    assert matches(cities=["казань"], categories=["tvs"], sources=["yandex"])
    assert not matches(categories=["fridges"])  # the top category only
    assert matches(cart_min=1000)
    assert not matches(cart_max=1000)
    assert not matches(cities=["Kazan"], sources=["yandex"])
    profile["traits"] = {"utm_source": "newsletter"}  # what identify said comes first
    assert matches(sources=["Newsletter"])
    assert not matches(sources=["yandex"])
