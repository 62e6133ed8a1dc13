"""The audiences API: filters validated with clear 4xx, another site's audience a 404,
members by cursor, and the CSV export with contacts, streamed over real HTTP and safe to open
in a spreadsheet."""

import csv
import io
from datetime import timedelta

import httpx

from app.db import utcnow
from tests.audiences.test_membership import compute, create
from tests.factories import bearer, send
from tests.rules.helpers import publish, views, views_rule_set


async def test_filters_are_validated_and_audiences_belong_to_their_site(client, site, other_site):
    headers = bearer(site.secret_key)
    for filters, where in (
        ({"score_min": 50, "score_max": 10}, "score_min"),
        ({"temperature": ["tepid"]}, "temperature"),
        ({"interests": [{"category": "fridges", "min_views": 0}]}, "min_views"),
        ({"visits": 3}, "visits"),  # unknown filter
        ({"last_seen_within_hours": 24, "last_seen_not_within_hours": 48}, "last_seen"),
    ):
        r = await client.post(
            "/v1/audiences", headers=headers, json={"name": "x", "filters": filters}
        )
        assert r.status_code == 422, (filters, r.text)
        assert r.json()["code"] == "validation_error"
        assert where in r.text
    made = await create(client, site, "Warm", temperature=["warm"])
    r = await client.post("/v1/audiences", headers=headers, json={"name": "Warm"})
    assert (r.status_code, r.json()["code"]) == (409, "name_taken")
    theirs = bearer(other_site.secret_key)
    for method, path in (
        ("GET", f"/v1/audiences/{made['id']}"),
        ("GET", f"/v1/audiences/{made['id']}/members"),
        ("GET", f"/v1/audiences/{made['id']}/members.csv"),
        ("DELETE", f"/v1/audiences/{made['id']}"),
    ):
        r = await client.request(method, path, headers=theirs)
        assert (r.status_code, r.json()["code"]) == (404, "not_found"), path
    listed = (await client.get("/v1/audiences", headers=theirs)).json()["data"]
    assert made["id"] not in [a["id"] for a in listed]
    r = await client.get(f"/v1/audiences/{made['id']}/members?cursor=!!", headers=headers)
    assert (r.status_code, r.json()["code"]) == (400, "invalid_cursor")
    assert (await client.delete(f"/v1/audiences/{made['id']}", headers=headers)).status_code == 204
    listed = (await client.get("/v1/audiences", headers=headers)).json()["data"]
    assert made["id"] not in [a["id"] for a in listed]


async def test_members_by_cursor_and_the_csv_with_contacts(app, client, session, live_server, site):
    await publish(client, site.secret_key, views_rule_set())
    now = utcnow()
    for i in range(5):
        await send(client, site, *views(f"v{i}", 1, origin=now - timedelta(minutes=9)))
    traits = {"email": '=HYPERLINK("http://evil")@x.com', "name": "+Ann", "city": "Kazan"}
    await send(
        client,
        site,
        {"type": "identify", "anonymousId": "v0", "messageId": "id-0", "traits": traits,
         "timestamp": now.isoformat()},
    )  # fmt: skip
    audience = await create(client, site, "Viewers", visits_min=1)
    await compute(app, session)
    headers = bearer(site.secret_key)
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = await client.get(
            f"/v1/audiences/{audience['id']}/members", headers=headers, params=params
        )
        assert r.status_code == 200, r.text
        seen += [m["lead_id"] for m in r.json()["data"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5
    assert seen == sorted(seen)
    assert (await client.get(f"/v1/audiences/{audience['id']}", headers=headers)).json()[
        "members"
    ] == 5

    async with httpx.AsyncClient(base_url=live_server.url) as real:
        r = await real.get(f"/v1/audiences/{audience['id']}/members.csv", headers=headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert sorted(row["lead_id"] for row in rows) == sorted(seen)
    ann = next(row for row in rows if row["email"])
    # Would-be formulas are text: a leading quote.
    assert ann["email"] == '\'=HYPERLINK("http://evil")@x.com'
    assert (ann["name"], ann["city"]) == ("'+Ann", "Kazan")


async def test_a_new_site_starts_with_the_starter_audiences(app, client, session, site):
    r = await client.get("/v1/audiences", headers=bearer(site.secret_key))
    starters = {a["name"]: a for a in r.json()["data"]}
    assert set(starters) == {
        "Interested in a category, not ready",
        "Abandoned cart this week",
        "Ordered once, came back",
    }
    assert {a["state"] for a in starters.values()} == {"ready"}
    # A warm visitor with 3+ views of one category and no order is "interested, not ready".
    await publish(client, site.secret_key, views_rule_set())
    await send(client, site, *views("v", 3, origin=utcnow() - timedelta(minutes=5)))
    interested = starters["Interested in a category, not ready"]
    r = await client.get(f"/v1/audiences/{interested['id']}", headers=bearer(site.secret_key))
    assert r.json()["members"] == 1
