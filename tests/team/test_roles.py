"""Who may do what: the site's secret key and an admin's token everything, a manager's token
the leads (read, status, contacts) and stats but not rules, webhooks, the team or the site's
settings; a revoked token or a deactivated person stops at once; one site's person never sees
another site's leads."""

import pytest

from tests.factories import bearer, send
from tests.leads.helpers import hot, id_of
from tests.team.helpers import make_token, make_user, new_token, pat

# (method, path, body): what a manager may do.
MANAGER_ALLOWED = [
    ("GET", "/v1/leads", None),
    ("GET", "/v1/leads/{lead}", None),
    ("PATCH", "/v1/leads/{lead}", {"status": "contacted"}),
    ("POST", "/v1/leads/{lead}/contacts", {"channel": "phone"}),
    ("GET", "/v1/stats/funnel", None),
    ("GET", "/v1/stats/speed-to-lead", None),
    ("GET", "/v1/me", None),
]
# Admin only: rules, webhooks, team, site settings, erasure.
ADMIN_ONLY = [
    ("GET", "/v1/rules", None),
    ("GET", "/v1/rules/versions", None),
    ("GET", "/v1/rules/versions/1/diff/1", None),
    ("POST", "/v1/rules/versions/1/restore", None),
    ("GET", "/v1/webhooks", None),
    ("POST", "/v1/webhooks", {"url": "https://example.com/hook"}),
    ("GET", "/v1/users", None),
    ("POST", "/v1/users", {"email": "x@shop.example", "password": "long enough", "role": "admin"}),
    ("PATCH", "/v1/users/{me}", {"role": "admin"}),
    ("DELETE", "/v1/people", {"email": "someone@example.com"}),
    ("POST", "/v1/site/secret-key/rotate", None),
]


@pytest.fixture
async def lead(client, session, site):
    await send(client, site, *hot("v"))
    return await id_of(session, site, "v")


async def _call(client, method, path, body, headers, **ids):
    return await client.request(method, path.format(**ids), json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body"), MANAGER_ALLOWED)
async def test_a_managers_token_reaches_the_leads(client, session, site, lead, method, path, body):
    manager = await make_user(session, site, "manager")
    r = await _call(client, method, path, body, pat(await make_token(session, manager)), lead=lead)
    assert r.status_code in (200, 201), r.text


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ONLY)
async def test_a_managers_token_is_refused_admin_routes(client, session, site, method, path, body):
    manager = await make_user(session, site, "manager")
    token = await make_token(session, manager)
    r = await _call(client, method, path, body, pat(token), me=manager.id)
    assert r.status_code == 403, r.text
    assert r.json() == {
        "code": "admin_only",
        "message": r.json()["message"],
        "details": [],
    }
    # Nothing was changed: the manager is still a manager, the secret key still works.
    me = (await client.get("/v1/me", headers=pat(token))).json()
    assert me["role"] == "manager"
    assert (await client.get("/v1/rules", headers=bearer(site.secret_key))).status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ONLY[:-1])  # not rotating the key
async def test_an_admins_token_does_what_the_secret_key_does(
    client, session, site, method, path, body
):
    admin = await make_user(session, site, "admin")
    r = await _call(client, method, path, body, pat(await make_token(session, admin)), me=admin.id)
    assert r.status_code in (200, 201), r.text


async def test_an_admins_token_rotates_the_secret_key(client, session, site):
    admin = await make_user(session, site, "admin")
    r = await client.post(
        "/v1/site/secret-key/rotate", headers=pat(await make_token(session, admin))
    )
    assert r.status_code == 200
    assert (await client.get("/v1/rules", headers=bearer(site.secret_key))).status_code == 401


async def test_the_role_is_read_at_each_request(client, session, site):
    manager = await make_user(session, site, "manager")
    token = await make_token(session, manager)
    assert (await client.get("/v1/rules", headers=pat(token))).status_code == 403
    r = await client.patch(
        f"/v1/users/{manager.id}", headers=bearer(site.secret_key), json={"role": "admin"}
    )
    assert r.json()["role"] == "admin"
    assert (await client.get("/v1/rules", headers=pat(token))).status_code == 200


async def test_a_revoked_token_stops_at_once(client, session, site):
    manager = await make_user(session, site)
    token = await new_token(session, manager)
    other = await make_token(session, manager)
    listed = (await client.get("/v1/me/tokens", headers=pat(other))).json()
    assert len(listed) == 2
    assert all(set(t) == {"id", "name", "created_at"} for t in listed)
    r = await client.delete(f"/v1/me/tokens/{token.token.id}", headers=pat(other))
    assert r.status_code == 204
    r = await client.get("/v1/leads", headers=pat(token.secret))
    assert (r.status_code, r.json()["code"]) == (401, "unauthorized")
    assert (await client.get("/v1/leads", headers=pat(other))).status_code == 200
    # Only one's own tokens: another person's token is not found, and keeps working.
    stranger = await make_user(session, site, email="stranger@shop.example")
    theirs = await new_token(session, stranger)
    r = await client.delete(f"/v1/me/tokens/{theirs.token.id}", headers=pat(other))
    assert r.status_code == 404
    assert (await client.get("/v1/leads", headers=pat(theirs.secret))).status_code == 200


async def test_a_token_made_through_the_api_is_shown_once(client, session, site):
    manager = await make_user(session, site)
    first = await make_token(session, manager)
    r = await client.post("/v1/me/tokens", headers=pat(first), json={"name": "CRM sync"})
    assert r.status_code == 201
    created = r.json()
    assert created["token"].startswith("lh_pat_")
    assert r.headers["cache-control"] == "no-store"
    assert (await client.get("/v1/me", headers=pat(created["token"]))).json()["id"] == str(
        manager.id
    )
    listed = (await client.get("/v1/me/tokens", headers=pat(first))).json()
    assert {t["name"] for t in listed} == {"tests", "CRM sync"}


async def test_deactivation_stops_tokens_at_once(client, session, site):
    manager = await make_user(session, site)
    token = await make_token(session, manager)
    r = await client.patch(
        f"/v1/users/{manager.id}", headers=bearer(site.secret_key), json={"active": False}
    )
    assert (r.status_code, r.json()["active"]) == (200, False)
    assert (await client.get("/v1/leads", headers=pat(token))).status_code == 401
    # Reactivated: the old token is gone for good (deactivation revoked it).
    await client.patch(
        f"/v1/users/{manager.id}", headers=bearer(site.secret_key), json={"active": True}
    )
    assert (await client.get("/v1/leads", headers=pat(token))).status_code == 401


async def test_a_person_of_one_site_never_sees_another_sites_leads(
    client, session, site, other_site, lead
):
    theirs = await make_user(session, other_site, "admin")
    token = await make_token(session, theirs)
    r = await client.get(f"/v1/leads/{lead}", headers=pat(token))
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    assert (await client.get("/v1/leads", headers=pat(token))).json()["data"] == []
    ours = await make_user(session, site, "manager")
    r = await client.patch(f"/v1/users/{ours.id}", headers=pat(token), json={"role": "admin"})
    assert r.status_code == 404
    users = (await client.get("/v1/users", headers=pat(token))).json()
    assert [u["email"] for u in users] == ["admin@shop.example"]


async def test_me_is_for_people_not_the_secret_key(client, site):
    r = await client.get("/v1/me", headers=bearer(site.secret_key))
    assert (r.status_code, r.json()["code"]) == (403, "person_required")
