"""The admin API of people, and one's own profile: emails unique per site whatever their case,
passwords stored as Argon2id hashes and never returned, time zones and working hours checked."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app.team.models import User
from app.team.schemas import WorkingHours, default_working_hours
from tests.factories import bearer
from tests.team.helpers import make_token, make_user, pat

NEW = {"email": "Boris@Shop.example", "password": "a long password", "role": "manager"}


async def test_an_admin_adds_a_person(client, session, site):
    r = await client.post("/v1/users", headers=bearer(site.secret_key), json=NEW)
    assert r.status_code == 201, r.text
    person = r.json()
    assert person["email"] == "boris@shop.example"
    assert (person["role"], person["active"], person["on_duty"]) == ("manager", True, True)
    assert person["time_zone"] == "UTC"
    assert WorkingHours(**person["working_hours"]) == default_working_hours()
    assert not any("password" in key for key in person)
    stored = await session.scalar(select(User.password_hash))
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert "a long password" not in stored
    listed = (await client.get("/v1/users", headers=bearer(site.secret_key))).json()
    assert [p["id"] for p in listed] == [person["id"]]
    assert not any("password" in key for p in listed for key in p)
    # The new person can sign in with that password.
    r = await client.post(
        "/v1/session", json={"email": "boris@shop.example", "password": NEW["password"]}
    )
    assert r.status_code == 200


async def test_an_email_is_unique_per_site_whatever_its_case(client, site, other_site):
    assert (
        await client.post("/v1/users", headers=bearer(site.secret_key), json=NEW)
    ).status_code == 201
    again = {**NEW, "email": "BORIS@shop.example"}
    r = await client.post("/v1/users", headers=bearer(site.secret_key), json=again)
    assert (r.status_code, r.json()["code"]) == (409, "email_taken")
    r = await client.post("/v1/users", headers=bearer(other_site.secret_key), json=again)
    assert r.status_code == 201  # another site may have the same person


@pytest.mark.parametrize(
    "change",
    [
        {"time_zone": "Mars/Olympus"},
        {"time_zone": "../../etc/passwd"},
        {"working_hours": {"mon": {"start": "18:00", "end": "09:00"}}},
        {"working_hours": {"mon": {"start": "25:00", "end": "26:00"}}},
        {"working_hours": {"someday": None}},
        {"role": "owner"},
        {"password": "short"},
    ],
)
async def test_a_bad_profile_is_422(client, site, change):
    r = await client.post("/v1/users", headers=bearer(site.secret_key), json={**NEW, **change})
    assert (r.status_code, r.json()["code"]) == (422, "validation_error")


async def test_a_person_sets_their_own_profile_and_duty(client, session, site):
    manager = await make_user(session, site)
    token = await make_token(session, manager)
    hours = {"mon": {"start": "10:00", "end": "19:00"}, "sat": {"start": "10:00", "end": "14:00"}}
    r = await client.patch(
        "/v1/me",
        headers=pat(token),
        json={
            "time_zone": "Asia/Yekaterinburg",
            "working_hours": hours,
            "on_duty": False,
            "name": "Anna",
        },
    )
    assert r.status_code == 200, r.text
    me = (await client.get("/v1/me", headers=pat(token))).json()
    assert (me["time_zone"], me["on_duty"], me["name"]) == ("Asia/Yekaterinburg", False, "Anna")
    assert me["working_hours"]["sat"] == {"start": "10:00", "end": "14:00"}
    assert me["working_hours"]["tue"] is None
    # One's own role is not theirs to change.
    r = await client.patch("/v1/me", headers=pat(token), json={"role": "admin"})
    assert r.status_code == 422


def test_working_hours_are_read_in_the_persons_time_zone():
    hours = default_working_hours()
    monday_0700_utc = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)
    assert not hours.is_working(monday_0700_utc, "UTC")
    assert hours.is_working(monday_0700_utc, "Europe/Moscow")  # 10:00 there
    assert not hours.is_working(monday_0700_utc, "America/New_York")  # 02:00 there
    saturday = datetime(2026, 12, 12, 12, 0, tzinfo=UTC)
    assert not hours.is_working(saturday, "UTC")
    assert hours.is_working(datetime(2026, 12, 7, 17, 59, tzinfo=UTC), "UTC")
    assert not hours.is_working(datetime(2026, 12, 7, 18, 0, tzinfo=UTC), "UTC")


async def test_colleagues_are_the_active_people_of_ones_own_site(client, session, site, other_site):
    anna = await make_user(session, site, "manager", "anna@shop.example", name="Anna")
    await make_user(session, site, "admin", "olga@shop.example", name="Olga", on_duty=False)
    gone = await make_user(session, site, "manager", "gone@shop.example", name="Gone")
    await make_user(session, other_site, "manager", "elsewhere@shop.example")
    r = await client.patch(
        f"/v1/users/{gone.id}", headers=bearer(site.secret_key), json={"active": False}
    )
    assert r.status_code == 200
    r = await client.get("/v1/me/colleagues", headers=pat(await make_token(session, anna)))
    assert r.status_code == 200, r.text
    assert [(p["email"], p["role"], p["on_duty"]) for p in r.json()] == [
        ("anna@shop.example", "manager", True),
        ("olga@shop.example", "admin", False),
    ]
    assert set(r.json()[0]) == {"id", "name", "email", "role", "on_duty"}


async def test_the_last_admin_stays_one(client, session, site):
    olga = await make_user(session, site, "admin", "olga@shop.example")
    token = await make_token(session, olga)
    for change in ({"role": "manager"}, {"active": False}):
        r = await client.patch(f"/v1/users/{olga.id}", headers=pat(token), json=change)
        assert (r.status_code, r.json()["code"]) == (409, "last_admin"), r.text
    vera = await make_user(session, site, "admin", "vera@shop.example")
    r = await client.patch(f"/v1/users/{olga.id}", headers=pat(token), json={"role": "manager"})
    assert (r.status_code, r.json()["role"]) == (200, "manager")
    r = await client.patch(
        f"/v1/users/{vera.id}", headers=bearer(site.secret_key), json={"active": False}
    )
    assert (r.status_code, r.json()["code"]) == (409, "last_admin")
