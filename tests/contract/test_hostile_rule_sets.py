"""Rule sets with values that validated but broke what was computed from them later."""

import pytest

from tests.factories import create_site

HUGE_WEEKS = "99999999999999999999w"


@pytest.fixture
async def keys(session) -> tuple[tuple[str, str], dict[str, str]]:
    site = await create_site(session)
    return (site.write_key, ""), {"Authorization": f"Bearer {site.secret_key}"}


async def _track(client, auth) -> int:
    event = {"type": "track", "event": "A", "anonymousId": "visitor"}
    return (await client.post("/v1/track", json=event, auth=auth)).status_code


@pytest.mark.parametrize(
    ("change", "field"),
    [
        # Held hot until past year 9999: preview and scoring raised OverflowError (a 500).
        ({"hard": [{"id": "h", "steps": [{"event": "A"}], "within": HUGE_WEEKS}]}, "hard.0.within"),
        ({"decay": {"half_life": 1e300}}, "decay.half_life"),
        # Infinite scores were stored as null: every later event of the lead was a 500.
        ({"behaviour": [{"id": "b", "event": "A", "points": 1e308}]}, "behaviour.0.points"),
        ({"max_score": 1e300}, "max_score"),
    ],
)
async def test_out_of_range_rule_set_is_a_422_and_ingestion_goes_on(client, keys, change, field):
    auth, secret = keys
    assert await _track(client, auth) == 200
    document = {**(await client.get("/v1/rules", headers=secret)).json(), **change}
    for method, path in (("POST", "/v1/rules/preview"), ("PUT", "/v1/rules")):
        response = await client.request(method, path, json=document, headers=secret)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "invalid_rule_set"
        assert [d["field"] for d in response.json()["details"]] == [field]
    assert await _track(client, auth) == 200
