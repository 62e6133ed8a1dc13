"""A site's secret key can be rotated (API and CLI): the new key is shown once, the old one
is a 401 at once, on every replica, and a 200 means the new key is stored."""

import asyncio

import httpx
import pytest

from app.main import create_app
from app.sites.models import Site
from app.sites.service import hash_secret_key
from tests.factories import bearer, create_site
from tests.test_cli import run_cli

ROTATE = "/v1/site/secret-key/rotate"


async def works(client: httpx.AsyncClient, key: str) -> int:
    return (await client.get("/v1/webhooks", headers=bearer(key))).status_code


async def stored_hash(session, site) -> str:
    session.expire_all()
    row = await session.get(Site, site.site.id)
    return row.secret_key_hash


async def test_the_route_gives_a_new_key_once_and_the_old_one_stops(client, site, session):
    r = await client.post(ROTATE, headers=bearer(site.secret_key))
    assert r.status_code == 200, r.text
    new = r.json()["secret_key"]
    assert new.startswith("sk_")
    assert new != site.secret_key
    assert r.json()["site_id"] == str(site.site.id)
    assert r.headers["cache-control"] == "no-store"
    assert await works(client, site.secret_key) == 401
    assert await works(client, new) == 200
    assert await stored_hash(session, site) == hash_secret_key(new)  # only the hash is kept


async def test_a_replica_refuses_the_old_key_at_once(client, site, settings):
    other = create_app(settings)  # another process on the same database
    async with (
        other.router.lifespan_context(other),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=other), base_url="http://replica.test"
        ) as replica,
    ):
        assert await works(replica, site.secret_key) == 200
        r = await client.post(ROTATE, headers=bearer(site.secret_key))
        assert await works(replica, site.secret_key) == 401
        assert await works(replica, r.json()["secret_key"]) == 200


async def test_a_200_over_http_means_the_new_key_is_stored(live_server, site, session):
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        for _ in range(5):
            r = await http.post(ROTATE, headers=bearer(site.secret_key))
            assert r.status_code == 200
            # Read at once, by another connection: the commit came before the answer.
            assert await stored_hash(session, site) == hash_secret_key(r.json()["secret_key"])
            site = type(site)(site.site, site.write_key, r.json()["secret_key"])


async def test_two_rotations_with_one_key_one_wins(live_server, site):
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        answers = await asyncio.gather(
            *(http.post(ROTATE, headers=bearer(site.secret_key)) for _ in range(4))
        )
        codes = sorted(r.status_code for r in answers)
        assert codes == [200, 401, 401, 401], [r.text for r in answers]
        [won] = [r.json()["secret_key"] for r in answers if r.status_code == 200]
        assert (await http.get("/v1/webhooks", headers=bearer(won))).status_code == 200


async def test_the_old_and_a_write_key_cannot_rotate(client, site):
    r = await client.post(ROTATE, headers=bearer("sk_nope"))
    assert (r.status_code, r.json()["code"]) == (401, "unauthorized")
    r = await client.post(ROTATE, headers=bearer(site.write_key))
    assert r.status_code == 403


def _cli(database_url: str, *args: str):
    return run_cli("sites", "rotate-secret", *args, env={"LEADHEAT_DATABASE_URL": database_url})


@pytest.mark.parametrize("by", ["id", "name"])
async def test_the_cli_prints_a_new_key_and_the_old_one_stops(
    client, site, database_url, session, by
):
    ref = str(site.site.id) if by == "id" else site.site.name
    result = await asyncio.to_thread(_cli, database_url, ref)
    assert result.returncode == 0, result.stderr
    [new] = [w for w in result.stdout.split() if w.startswith("sk_")]
    assert new != site.secret_key
    assert await works(client, site.secret_key) == 401
    assert await works(client, new) == 200
    assert await stored_hash(session, site) == hash_secret_key(new)


async def test_the_cli_asks_for_the_id_when_names_repeat(client, site, database_url, session):
    twin = await create_site(session, name=site.site.name)
    result = await asyncio.to_thread(_cli, database_url, site.site.name)
    assert result.returncode == 2
    assert str(site.site.id) in result.stderr
    assert str(twin.site.id) in result.stderr
    assert await works(client, site.secret_key) == 200  # nothing changed
    result = await asyncio.to_thread(_cli, database_url, "No such shop")
    assert result.returncode == 2
    assert "No site" in result.stderr
