"""Only the site's secret key reads its leads; another site's lead does not exist."""

import pytest

from tests.factories import basic_auth, bearer, send
from tests.leads.helpers import cold, hot, id_of

READS = ["/v1/leads", "/v1/leads/{id}", "/v1/stats/funnel"]


@pytest.fixture
async def lead_id(client, session, site):
    await send(client, site, *hot("v"))
    return await id_of(session, site, "v")


@pytest.mark.parametrize("path", READS)
async def test_no_key_is_401(client, lead_id, path):
    r = await client.get(path.format(id=lead_id))
    assert r.status_code == 401
    assert r.json()["code"] == "unauthorized"
    assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", READS)
async def test_an_unknown_secret_key_is_401(client, lead_id, path):
    r = await client.get(path.format(id=lead_id), headers={"Authorization": "Bearer sk_nope"})
    assert r.status_code == 401


@pytest.mark.parametrize("path", READS)
async def test_a_write_key_reads_nothing(client, site, lead_id, path):
    r = await client.get(
        path.format(id=lead_id), headers={"Authorization": f"Bearer {site.write_key}"}
    )
    assert r.status_code == 403
    assert r.json()["code"] == "write_key_not_allowed"


async def test_a_write_key_cannot_change_a_lead(client, site, lead_id):
    r = await client.patch(
        f"/v1/leads/{lead_id}",
        headers={"Authorization": f"Bearer {site.write_key}"},
        json={"status": "won"},
    )
    assert r.status_code == 403
    r = await client.patch(f"/v1/leads/{lead_id}", auth=basic_auth(site.write_key), json={})
    assert r.status_code == 401


async def test_another_sites_lead_is_404_and_never_listed(client, site, other_site, lead_id):
    await send(client, other_site, *cold("theirs"))
    r = await client.get(f"/v1/leads/{lead_id}", headers=bearer(other_site.secret_key))
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    r = await client.patch(
        f"/v1/leads/{lead_id}", headers=bearer(other_site.secret_key), json={"status": "won"}
    )
    assert r.status_code == 404
    theirs = (await client.get("/v1/leads", headers=bearer(other_site.secret_key))).json()["data"]
    assert [lead["id"] for lead in theirs] != [lead_id]
    assert len(theirs) == 1
    assert (await client.get(f"/v1/leads/{lead_id}", headers=bearer(site.secret_key))).json()[
        "status"
    ] == "new"
    window = {"from": "2026-09-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}
    r = await client.get("/v1/stats/funnel", headers=bearer(other_site.secret_key), params=window)
    stats = r.json()
    assert stats["funnel"][0]["count"] == 1
