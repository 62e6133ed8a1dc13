"""Dashboard sign-in over real HTTP (uvicorn): the session cookie's attributes, CSRF, sign-out
here and everywhere, deactivation, and the rate limit on failed sign-ins."""

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from app.db import utcnow
from app.team import service
from app.team.models import SignInFailure, UserSession
from app.team.service import FAILURE_WINDOW, FAILURES_ALLOWED, SESSION_COOKIE, SESSION_LIFETIME
from app.worker import background_loops, session_sweep_loop
from tests.factories import bearer
from tests.team.helpers import PASSWORD, make_user, sign_in


@pytest.fixture
async def http(live_server):
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        yield client


async def test_sign_in_sets_an_httponly_samesite_cookie(http, session, site):
    manager = await make_user(session, site, "manager", email="Anna@Shop.example")
    r = await http.post("/v1/session", json={"email": "anna@shop.EXAMPLE", "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"]["id"] == str(manager.id)
    assert "password_hash" not in body["user"]
    assert len(body["csrf_token"]) >= 32
    cookie = r.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= attributes
    assert "samesite=lax" in cookie.lower()
    assert "secure" not in attributes  # plain http: a Secure cookie would never come back
    # The cookie holds a random id; the table only its digest.
    value = http.cookies[SESSION_COOKIE]
    stored = list(await session.scalars(select(UserSession.id_hash)))
    assert len(stored) == 1
    assert value not in stored[0]
    me = await http.get("/v1/me")
    assert (me.status_code, me.json()["email"]) == (200, "anna@shop.example")


async def test_the_cookie_is_secure_behind_an_https_proxy(http, session, site):
    await make_user(session, site)
    r = await http.post(
        "/v1/session",
        json={"email": "manager@shop.example", "password": PASSWORD},
        headers={"X-Forwarded-Proto": "https"},  # from 127.0.0.1: a trusted proxy
    )
    assert r.status_code == 200
    attributes = [part.strip().lower() for part in r.headers["set-cookie"].split(";")]
    assert "secure" in attributes
    assert "httponly" in attributes


async def test_a_change_with_the_cookie_needs_the_csrf_token(http, session, site):
    await make_user(session, site, on_duty=True)
    csrf = await sign_in(http, "manager@shop.example")
    r = await http.patch("/v1/me", json={"on_duty": False})
    assert (r.status_code, r.json()["code"]) == (403, "csrf_failed")
    r = await http.patch("/v1/me", json={"on_duty": False}, headers={"X-CSRF-Token": "wrong"})
    assert r.status_code == 403
    assert (await http.get("/v1/me")).json()["on_duty"] is True  # nothing changed
    r = await http.patch("/v1/me", json={"on_duty": False}, headers={"X-CSRF-Token": csrf})
    assert (r.status_code, r.json()["on_duty"]) == (200, False)
    # After a reload the page asks for the token again (the cookie is HttpOnly).
    again = await http.get("/v1/session")
    assert again.json()["csrf_token"] == csrf


async def test_a_cross_site_form_post_is_refused(http, session, site):
    await make_user(session, site)
    await sign_in(http, "manager@shop.example")
    # What a form on another site makes the browser send: the cookie, a form body, its Origin,
    # and no custom header (a browser never adds one cross-site without a CORS preflight).
    r = await http.post(
        "/v1/me/tokens",
        content="name=stolen",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": "https://evil.example",
        },
    )
    assert (r.status_code, r.json()["code"]) == (403, "csrf_failed")
    assert (await http.get("/v1/me/tokens")).json() == []
    r = await http.delete("/v1/session", headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert (await http.get("/v1/me")).status_code == 200  # still signed in


async def test_sign_out_ends_this_session_only(http, live_server, session, site):
    await make_user(session, site)
    csrf = await sign_in(http, "manager@shop.example")
    async with httpx.AsyncClient(base_url=live_server.url) as laptop:
        await sign_in(laptop, "manager@shop.example")
        old_cookie = http.cookies[SESSION_COOKIE]
        r = await http.delete("/v1/session", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 204
        assert SESSION_COOKIE not in http.cookies  # the answer cleared it
        r = await http.get("/v1/me", headers={"Cookie": f"{SESSION_COOKIE}={old_cookie}"})
        assert (r.status_code, r.json()["code"]) == (401, "session_expired")
        assert (await laptop.get("/v1/me")).status_code == 200


async def test_sign_out_everywhere(http, live_server, session, site):
    await make_user(session, site)
    await sign_in(http, "manager@shop.example")
    async with httpx.AsyncClient(base_url=live_server.url) as laptop:
        laptop_csrf = await sign_in(laptop, "manager@shop.example")
        r = await laptop.delete("/v1/me/sessions", headers={"X-CSRF-Token": laptop_csrf})
        assert r.status_code == 204
        assert (await laptop.get("/v1/me")).status_code == 401
        assert (await http.get("/v1/me")).status_code == 401
    assert await session.scalar(select(func.count()).select_from(UserSession)) == 0


async def test_deactivation_ends_sessions_at_once(http, session, site):
    manager = await make_user(session, site)
    await sign_in(http, "manager@shop.example")
    r = await http.patch(
        f"/v1/users/{manager.id}", headers=bearer(site.secret_key), json={"active": False}
    )
    assert r.status_code == 200
    assert (await http.get("/v1/me")).status_code == 401
    r = await http.post("/v1/session", json={"email": "manager@shop.example", "password": PASSWORD})
    assert (r.status_code, r.json()["code"]) == (401, "invalid_credentials")


async def test_a_manager_session_is_refused_admin_routes(http, session, site):
    await make_user(session, site, "manager")
    csrf = await sign_in(http, "manager@shop.example")
    assert (await http.get("/v1/leads")).status_code == 200
    for method, path in [("GET", "/v1/rules"), ("GET", "/v1/users"), ("POST", "/v1/webhooks")]:
        r = await http.request(
            method, path, headers={"X-CSRF-Token": csrf}, json={"url": "https://e.example/h"}
        )
        assert (r.status_code, r.json()["code"]) == (403, "admin_only"), path


async def _fail(http, email, ip="10.0.0.1"):
    return await http.post(
        "/v1/session",
        json={"email": email, "password": "not the password"},
        headers={"X-Forwarded-For": ip},
    )


async def test_failed_sign_ins_are_limited_per_email_and_reset(http, session, site):
    await make_user(session, site)
    for number in range(FAILURES_ALLOWED):
        r = await _fail(http, "manager@shop.example", ip=f"10.0.0.{number}")
        assert (r.status_code, r.json()["code"]) == (401, "invalid_credentials")
    # The right password now: refused all the same, from any address.
    right = {"email": "manager@shop.example", "password": PASSWORD}
    r = await http.post("/v1/session", json=right, headers={"X-Forwarded-For": "10.9.9.9"})
    assert (r.status_code, r.json()["code"]) == (429, "too_many_requests")
    assert int(r.headers["retry-after"]) == FAILURE_WINDOW.total_seconds()
    # The window passes (the failures are moved back to before it).
    before = utcnow() - FAILURE_WINDOW - timedelta(seconds=1)
    await session.execute(update(SignInFailure).values(at=before))
    r = await http.post("/v1/session", json=right, headers={"X-Forwarded-For": "10.9.9.9"})
    assert r.status_code == 200
    # A success clears the email's failures: twice one short of the limit, with a success
    # between, is never limited.
    for attempt in range(2):
        for _ in range(FAILURES_ALLOWED - 1):
            assert (
                await _fail(http, "manager@shop.example", ip=f"10.1.{attempt}.1")
            ).status_code == 401
        r = await http.post("/v1/session", json=right, headers={"X-Forwarded-For": "10.2.2.2"})
        assert r.status_code == 200, attempt


async def test_failed_sign_ins_are_limited_per_client_address(http, session, site):
    await make_user(session, site)
    for number in range(FAILURES_ALLOWED):
        assert (await _fail(http, f"guess{number}@shop.example")).status_code == 401
    right = {"email": "manager@shop.example", "password": PASSWORD}
    r = await http.post("/v1/session", json=right, headers={"X-Forwarded-For": "10.0.0.1"})
    assert r.status_code == 429
    r = await http.post("/v1/session", json=right, headers={"X-Forwarded-For": "10.0.0.2"})
    assert r.status_code == 200


async def test_an_email_of_two_sites_needs_the_site(http, session, site, other_site):
    ours = await make_user(session, site, email="same@shop.example")
    await make_user(session, other_site, email="same@shop.example")
    credentials = {"email": "same@shop.example", "password": PASSWORD}
    r = await http.post("/v1/session", json=credentials)
    assert (r.status_code, r.json()["code"]) == (409, "site_required")
    assert {d["site_id"] for d in r.json()["details"]} == {
        str(site.site.id),
        str(other_site.site.id),
    }
    r = await http.post("/v1/session", json={**credentials, "site": str(site.site.id)})
    assert (r.status_code, r.json()["user"]["id"]) == (200, str(ours.id))


async def test_changing_ones_password_signs_out_the_other_sessions(
    http, live_server, session, site
):
    await make_user(session, site)
    csrf = await sign_in(http, "manager@shop.example")
    async with httpx.AsyncClient(base_url=live_server.url) as laptop:
        await sign_in(laptop, "manager@shop.example")
        change = {"current_password": "a wrong one", "new_password": "a brand new one"}
        r = await http.post("/v1/me/password", json=change, headers={"X-CSRF-Token": csrf})
        assert (r.status_code, r.json()["code"]) == (403, "wrong_password")
        assert await session.scalar(select(func.count()).select_from(SignInFailure)) == 2
        change["current_password"] = PASSWORD
        r = await http.post("/v1/me/password", json=change, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 204
        assert (await http.get("/v1/me")).status_code == 200  # this one stays
        assert (await laptop.get("/v1/me")).status_code == 401
    old = {"email": "manager@shop.example", "password": PASSWORD}
    assert (await http.post("/v1/session", json=old)).status_code == 401
    new = {**old, "password": "a brand new one"}
    assert (await http.post("/v1/session", json=new)).status_code == 200


async def test_an_admin_sets_a_forgotten_password(http, session, site):
    manager = await make_user(session, site)
    await sign_in(http, "manager@shop.example")
    r = await http.patch(
        f"/v1/users/{manager.id}",
        headers=bearer(site.secret_key),
        json={"password": "set by the admin"},
    )
    assert r.status_code == 200
    assert "password" not in r.text
    assert (await http.get("/v1/me")).status_code == 401  # their sessions ended
    credentials = {"email": "manager@shop.example", "password": "set by the admin"}
    assert (await http.post("/v1/session", json=credentials)).status_code == 200


async def test_expired_sessions_are_swept_in_batches(db_engine, session, site):
    user = await make_user(session, site)
    for _ in range(5):
        await service.start_session(session, user)
    kept = await service.start_session(session, user)
    kept.row.expires_at = utcnow() + SESSION_LIFETIME * 3
    kept_hash = kept.row.id_hash
    await session.commit()

    later = utcnow() + SESSION_LIFETIME * 2
    assert await service.sweep_expired_sessions(db_engine, later, batch=2) == 5
    session.expire_all()
    assert list(await session.scalars(select(UserSession.id_hash))) == [kept_hash]
    await session.rollback()
    assert await service.sweep_expired_sessions(db_engine, later, batch=2) == 0
    assert ("team.session_sweep", session_sweep_loop) in background_loops()
