"""Versions as a marketer keeps them: a note and an author on each, the diff between any two,
and restoring an old version as a new one (which re-scores the leads, as a publish does)."""

from app.scoring.defaults import DEFAULT_RULE_SET
from tests.factories import bearer, send
from tests.rules.helpers import leads_of, publish, views, views_rule_set
from tests.team.helpers import make_token, make_user, pat, sign_in


async def _versions(client, headers) -> list[dict]:
    r = await client.get("/v1/rules/versions", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["versions"]


async def test_a_publish_keeps_its_note_and_who_published_it(client, site, session):
    key = bearer(site.secret_key)
    r = await client.put(
        "/v1/rules", headers=key, params={"note": "views count more"}, json=views_rule_set()
    )
    assert r.status_code == 200, r.text
    assert (r.json()["note"], r.json()["author"]) == ("views count more", "secret key")

    admin = await make_user(session, site, role="admin", email="anna@shop.example")
    token = await make_token(session, admin)
    r = await client.put("/v1/rules", headers=pat(token), json=views_rule_set(points=20))
    assert r.status_code == 200, r.text
    assert (r.json()["note"], r.json()["author"]) == (None, "anna@shop.example")

    csrf = await sign_in(client, "anna@shop.example")
    r = await client.put(
        "/v1/rules",
        headers={"X-CSRF-Token": csrf},
        params={"note": "from the dashboard"},
        json=views_rule_set(points=30),
    )
    assert r.status_code == 200, r.text
    client.cookies.clear()

    listed = await _versions(client, key)
    assert [(v["version"], v["note"], v["author"]) for v in listed] == [
        (4, "from the dashboard", "anna@shop.example"),
        (3, None, "anna@shop.example"),
        (2, "views count more", "secret key"),
        (1, None, None),  # made with the site
    ]
    assert all(v["created_at"] for v in listed)


async def test_a_manager_can_neither_publish_nor_restore(client, site, session):
    manager = await make_user(session, site, role="manager")
    token = await make_token(session, manager)
    r = await client.put("/v1/rules", headers=pat(token), json=views_rule_set())
    assert (r.status_code, r.json()["code"]) == (403, "admin_only")
    r = await client.post("/v1/rules/versions/1/restore", headers=pat(token))
    assert (r.status_code, r.json()["code"]) == (403, "admin_only")
    assert [v["version"] for v in await _versions(client, bearer(site.secret_key))] == [1]


async def test_a_note_longer_than_500_characters_is_refused(client, site):
    r = await client.put(
        "/v1/rules",
        headers=bearer(site.secret_key),
        params={"note": "x" * 501},
        json=views_rule_set(),
    )
    assert (r.status_code, r.json()["code"]) == (422, "validation_error")


async def test_the_diff_names_rules_added_removed_and_changed_field_by_field(client, site):
    key = bearer(site.secret_key)
    first = views_rule_set(
        points=10,
        behaviour=[
            {"id": "cart", "event": "Product Added", "points": 15, "cap": 30},
            {
                "id": "fridges",
                "event": "page",
                "conditions": [{"field": "url", "op": "contains", "value": "/fridges"}],
                "points": 2,
            },
        ],
    )
    second = views_rule_set(
        points=12,
        warm=25,
        behaviour=[
            {
                "id": "fridges",
                "event": "page",
                "conditions": [{"field": "url", "op": "contains", "value": "/freezers"}],
                "points": 2,
                "frequency": "once_per_visit",
            },
            {"id": "checkout", "event": "Checkout Started", "points": 35},
        ],
    )
    await publish(client, site.secret_key, first)
    await publish(client, site.secret_key, second)

    r = await client.get("/v1/rules/versions/2/diff/3", headers=key)
    assert r.status_code == 200, r.text
    diff = r.json()
    assert (diff["from"], diff["to"]) == (2, 3)
    assert diff["added"] == [
        {
            "id": "checkout",
            "kind": "behaviour",
            "rule": {"id": "checkout", "event": "Checkout Started", "points": 35},
        }
    ]
    assert [(d["id"], d["kind"]) for d in diff["removed"]] == [("cart", "behaviour")]
    changed = {c["id"]: c["changes"] for c in diff["changed"]}
    assert changed == {
        "view": [{"path": "points", "old": 10, "new": 12}],
        "fridges": [
            {"path": "conditions.0.value", "old": "/fridges", "new": "/freezers"},
            {"path": "frequency", "old": None, "new": "once_per_visit"},
        ],
    }
    assert {(s["path"], s["old"], s["new"]) for s in diff["settings"]} == {
        ("name", "10 per view", "12 per view"),
        ("thresholds.warm", 30, 25),
    }

    # The other way round: what was added was removed, and old and new swap.
    back = (await client.get("/v1/rules/versions/3/diff/2", headers=key)).json()
    assert [d["id"] for d in back["added"]] == ["cart"]
    assert [d["id"] for d in back["removed"]] == ["checkout"]
    assert {"path": "points", "old": 12, "new": 10} in {c["id"]: c for c in back["changed"]}[
        "view"
    ]["changes"]

    same = (await client.get("/v1/rules/versions/3/diff/3", headers=key)).json()
    assert (same["added"], same["removed"], same["changed"], same["settings"]) == ([], [], [], [])

    missing = await client.get("/v1/rules/versions/3/diff/9", headers=key)
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")


async def test_the_diff_from_the_default_rule_set_names_its_rules(client, site):
    await publish(client, site.secret_key, views_rule_set())
    diff = (await client.get("/v1/rules/versions/1/diff/2", headers=bearer(site.secret_key))).json()
    default_ids = {r["id"] for kind in ("behaviour", "fit", "hard") for r in DEFAULT_RULE_SET[kind]}
    assert {d["id"] for d in diff["removed"]} == default_ids
    assert [d["id"] for d in diff["added"]] == ["view"]


async def test_restoring_publishes_the_old_rules_as_a_new_version_and_rescores(
    client, site, session
):
    key = bearer(site.secret_key)
    await publish(client, site.secret_key, views_rule_set(points=10, warm=30, hot=60))
    await send(client, site, *views("ann", 4))
    [lead] = await leads_of(session, site.site.id)
    assert (lead.score, lead.temperature) == (40, "warm")

    await publish(client, site.secret_key, views_rule_set(points=20, warm=30, hot=60))
    [lead] = await leads_of(session, site.site.id)
    assert (lead.score, lead.temperature) == (80, "hot")

    r = await client.post("/v1/rules/versions/2/restore", headers=key)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == 4
    assert (body["note"], body["author"]) == ("restored from version 2", "secret key")
    assert body["job"]["rule_set_version"] == 4
    assert body["job"]["status"] == "done"
    [lead] = await leads_of(session, site.site.id)
    assert (lead.score, lead.rule_set_version) == (40, 4)

    restored = (await client.get("/v1/rules/versions/4", headers=key)).json()
    assert restored["behaviour"] == views_rule_set(points=10)["behaviour"]
    assert restored["active"] is True
    diff = (await client.get("/v1/rules/versions/2/diff/4", headers=key)).json()
    assert (diff["added"], diff["removed"], diff["changed"], diff["settings"]) == ([], [], [], [])

    r = await client.post(
        "/v1/rules/versions/1/restore", headers=key, params={"note": "back to the default"}
    )
    assert (r.json()["version"], r.json()["note"]) == (5, "back to the default")
    assert (await client.get("/v1/rules", headers=key)).json()["name"] == DEFAULT_RULE_SET["name"]

    missing = await client.post("/v1/rules/versions/9/restore", headers=key)
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert [v["version"] for v in await _versions(client, key)] == [5, 4, 3, 2, 1]
