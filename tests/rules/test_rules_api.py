"""Reading and publishing rule-set versions with the site's secret key."""

import asyncio

import pytest

from app.scoring.defaults import DEFAULT_RULE_SET
from tests.factories import bearer
from tests.rules.helpers import publish, views_rule_set


async def test_a_new_site_answers_the_default_rule_set_as_version_1(client, site):
    r = await client.get("/v1/rules", headers=bearer(site.secret_key))
    assert r.status_code == 200
    body = r.json()
    assert body["version"] == 1
    assert body["active"] is True
    assert body["created_at"]
    assert body["name"] == DEFAULT_RULE_SET["name"]
    assert body["thresholds"] == DEFAULT_RULE_SET["thresholds"]


async def test_publishing_adds_the_next_version_whatever_version_the_client_sends(client, site):
    body = await publish(client, site.secret_key, {**views_rule_set(), "version": 42})
    assert body["version"] == 2
    assert body["job"]["rule_set_version"] == 2
    assert body["job"]["url"] == f"/v1/rules/jobs/{body['job']['id']}"

    active = (await client.get("/v1/rules", headers=bearer(site.secret_key))).json()
    assert active["version"] == 2
    assert active["name"] == "10 per view"
    assert active["behaviour"] == views_rule_set()["behaviour"]


async def test_what_get_answers_can_be_put_back_as_is(client, site):
    active = (await client.get("/v1/rules", headers=bearer(site.secret_key))).json()
    body = await publish(client, site.secret_key, active)
    assert body["version"] == 2


async def test_old_versions_stay_listed_and_readable(client, site):
    await publish(client, site.secret_key, views_rule_set(points=10))
    await publish(client, site.secret_key, views_rule_set(points=20))

    listed = (await client.get("/v1/rules/versions", headers=bearer(site.secret_key))).json()
    assert [(v["version"], v["active"]) for v in listed["versions"]] == [
        (3, True),
        (2, False),
        (1, False),
    ]
    assert listed["versions"][0]["name"] == "20 per view"

    old = await client.get("/v1/rules/versions/2", headers=bearer(site.secret_key))
    assert old.status_code == 200
    assert old.json()["behaviour"][0]["points"] == 10
    assert old.json()["active"] is False
    default = (await client.get("/v1/rules/versions/1", headers=bearer(site.secret_key))).json()
    assert default["name"] == DEFAULT_RULE_SET["name"]

    missing = await client.get("/v1/rules/versions/9", headers=bearer(site.secret_key))
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


async def test_an_invalid_rule_set_is_refused_naming_the_rule_and_the_field(client, site):
    document = views_rule_set()
    document["behaviour"].append({"id": "cart", "event": "Product Added", "points": "many"})
    document["thresholds"] = {"warm": 50, "hot": 40}

    r = await client.put("/v1/rules", headers=bearer(site.secret_key), json=document)

    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "invalid_rule_set"
    assert "not valid" in body["message"]
    by_field = {d["field"]: d for d in body["details"]}
    assert by_field["behaviour.1.points"]["rule"] == "cart"
    assert by_field["behaviour.1.points"]["message"]
    assert by_field["thresholds.hot"]["rule"] is None
    assert "greater than warm" in by_field["thresholds.hot"]["message"]
    # Nothing was published.
    active = (await client.get("/v1/rules", headers=bearer(site.secret_key))).json()
    assert active["version"] == 1


async def test_a_body_that_is_not_an_object_is_a_validation_error(client, site):
    r = await client.put("/v1/rules", headers=bearer(site.secret_key), json=[1, 2])
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/rules"),
        ("PUT", "/v1/rules"),
        ("GET", "/v1/rules/versions"),
        ("GET", "/v1/rules/versions/1"),
        ("POST", "/v1/rules/preview"),
    ],
)
async def test_the_write_key_is_refused_and_a_missing_key_is_unauthorized(
    client, site, method, path
):
    body = views_rule_set() if method != "GET" else None
    refused = await client.request(method, path, headers=bearer(site.write_key), json=body)
    assert refused.status_code == 403
    assert refused.json()["code"] == "write_key_not_allowed"
    anonymous = await client.request(method, path, json=body)
    assert anonymous.status_code == 401


async def test_publishing_for_one_site_leaves_other_sites_alone(client, site, other_site):
    await publish(client, site.secret_key, views_rule_set())

    theirs = (await client.get("/v1/rules", headers=bearer(other_site.secret_key))).json()
    assert theirs["version"] == 1
    assert theirs["name"] == DEFAULT_RULE_SET["name"]
    listed = (await client.get("/v1/rules/versions", headers=bearer(other_site.secret_key))).json()
    assert [v["version"] for v in listed["versions"]] == [1]
    # Another site's versions and jobs are not found with this key.
    mine = await publish(client, site.secret_key, views_rule_set(points=5))
    assert (
        await client.get("/v1/rules/versions/3", headers=bearer(other_site.secret_key))
    ).status_code == 404
    assert (
        await client.get(mine["job"]["url"], headers=bearer(other_site.secret_key))
    ).status_code == 404


async def test_concurrent_publishes_get_distinct_versions(client, site):
    answers = await asyncio.gather(
        *(
            client.put("/v1/rules", headers=bearer(site.secret_key), json=views_rule_set(points=p))
            for p in (1, 2, 3, 4)
        )
    )
    assert [r.status_code for r in answers] == [200] * 4
    assert sorted(r.json()["version"] for r in answers) == [2, 3, 4, 5]
    listed = (await client.get("/v1/rules/versions", headers=bearer(site.secret_key))).json()
    assert [v["version"] for v in listed["versions"]] == [5, 4, 3, 2, 1]
