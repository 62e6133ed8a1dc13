"""A 2xx means committed: management writes commit before they are answered, so a commit
that fails is answered with an error, and the database keeps what it had."""

from typing import Any

import httpx
from sqlalchemy import select

from app.webhooks.models import WebhookEndpoint
from tests.factories import bearer, lead_by_anonymous_id, send
from tests.faults.helpers import failing_commit
from tests.leads.helpers import cold, id_of

HOOK_URL = "https://hooks.example.com/leadheat"


def assert_internal_error(r: httpx.Response) -> None:
    assert r.status_code == 500, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["code"] == "internal_error"
    assert len(body["details"][0]["error_id"]) == 32
    assert "secret" not in body


async def endpoint_rows(session: Any) -> list[dict[str, Any]]:
    rows = await session.execute(select(WebhookEndpoint.__table__))
    return [dict(row._mapping) for row in rows]


async def test_a_status_change_whose_commit_fails_is_a_500_and_the_lead_keeps_its_status(
    client, session, site, db_engine
):
    await send(client, site, *cold("v"))
    lead_id = await id_of(session, site, "v")
    url = f"/v1/leads/{lead_id}"
    async with failing_commit(db_engine, "leads", "UPDATE", "NEW.status = 'qualified'"):
        r = await client.patch(url, headers=bearer(site.secret_key), json={"status": "qualified"})
        assert_internal_error(r)
        assert (await lead_by_anonymous_id(session, site.site.id, "v")).status == "new"
    r = await client.patch(url, headers=bearer(site.secret_key), json={"status": "qualified"})
    assert r.status_code == 200, r.text
    assert (await lead_by_anonymous_id(session, site.site.id, "v")).status == "qualified"


async def test_a_contact_whose_commit_fails_is_a_500_and_nothing_is_recorded(
    client, session, site, db_engine
):
    await send(client, site, *cold("v"))
    lead_id = await id_of(session, site, "v")
    url = f"/v1/leads/{lead_id}/contacts"
    async with failing_commit(db_engine, "lead_contacts", "INSERT"):
        r = await client.post(
            url, headers=bearer(site.secret_key), json={"channel": "phone", "by": "Anna"}
        )
        assert_internal_error(r)
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    assert lead.first_contacted_at is None
    assert lead.status == "new"
    r = await client.post(
        url, headers=bearer(site.secret_key), json={"channel": "phone", "by": "Anna"}
    )
    assert r.status_code == 201, r.text
    assert (await lead_by_anonymous_id(session, site.site.id, "v")).status == "contacted"


async def test_a_webhook_endpoint_whose_commit_fails_shows_no_secret_and_is_not_stored(
    client, session, site, db_engine
):
    async with failing_commit(db_engine, "webhook_endpoints", "INSERT"):
        r = await client.post(
            "/v1/webhooks", headers=bearer(site.secret_key), json={"url": HOOK_URL}
        )
        assert_internal_error(r)  # the secret "shown once" is not shown for what was not kept
    assert await endpoint_rows(session) == []
    r = await client.post("/v1/webhooks", headers=bearer(site.secret_key), json={"url": HOOK_URL})
    assert r.status_code == 201, r.text
    # Answered only once committed: it is there for the very next request.
    r = await client.get(f"/v1/webhooks/{r.json()['id']}", headers=bearer(site.secret_key))
    assert r.status_code == 200, r.text


async def test_a_rotation_whose_commit_fails_keeps_the_old_secret(client, session, site, db_engine):
    r = await client.post("/v1/webhooks", headers=bearer(site.secret_key), json={"url": HOOK_URL})
    assert r.status_code == 201, r.text
    rotate = f"/v1/webhooks/{r.json()['id']}/rotate"
    before = await endpoint_rows(session)
    async with failing_commit(db_engine, "webhook_endpoints", "UPDATE"):
        assert_internal_error(await client.post(rotate, headers=bearer(site.secret_key)))
    assert await endpoint_rows(session) == before
    r = await client.post(rotate, headers=bearer(site.secret_key))
    assert r.status_code == 200, r.text
    assert await endpoint_rows(session) != before
