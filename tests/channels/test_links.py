"""One-click links: a GET shows what the link does and never acts (mail scanners open links);
a POST acts for the person the link was sent to, once; a link changed, expired, or of an
inactive person does nothing."""

import uuid
from datetime import timedelta

import itsdangerous.timed
import pytest
from sqlalchemy import select

from app.channels.links import LinkSigner
from app.crypto import secret_box
from app.webhooks.models import LeadContact
from tests.factories import send
from tests.leads.helpers import hot
from tests.team.helpers import ALL_WEEK, NEVER, awake_zone, make_token, make_user, pat

HTML = {"accept": "text/html"}


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"run_background": False})


@pytest.fixture
def signer(settings):
    """The service's own signer (the same key): the links its messages carry."""
    return LinkSigner(secret_box(settings), timedelta(hours=settings.channels.action_link_hours))


async def test_get_shows_post_acts_once_for_the_person_it_was_sent_to(
    client, session, site, signer, monkeypatch
):
    anna = await make_user(
        session, site, "manager", "anna@shop.example", name="Anna",
        working_hours=ALL_WEEK, time_zone=awake_zone(),
    )  # fmt: skip
    bob = await make_user(session, site, "manager", "bob@shop.example", working_hours=NEVER)
    headers = pat(await make_token(session, anna))
    await send(client, site, *hot("v"))
    [lead] = (await client.get("/v1/leads", headers=headers)).json()["data"]
    assert lead["owner"]["id"] == str(anna.id)

    contacted = f"/v1/actions/{signer.sign(anna.id, _id(lead), 'contacted')}"
    r = await client.get(contacted, headers=HTML)
    assert r.status_code == 200
    assert '<form method="post">' in r.text
    assert "Mark the lead contacted" in r.text
    assert (await session.scalars(select(LeadContact))).all() == []  # a GET never acts

    r = await client.post(contacted, headers=HTML)
    assert r.status_code == 200, r.text
    assert "clock has stopped" in r.text
    [contact] = (await session.scalars(select(LeadContact))).all()
    assert contact.by == "Anna"
    card = (await client.get(f"/v1/leads/{lead['id']}", headers=headers)).json()
    assert card["first_contacted_at"] is not None

    r = await client.post(contacted)  # the same link again
    assert r.status_code == 409
    assert r.json()["code"] == "link_used"
    assert len((await session.scalars(select(LeadContact))).all()) == 1

    # Bob's link to claim acts as Bob: Anna owns the lead, so it is refused.
    r = await client.post(f"/v1/actions/{signer.sign(bob.id, _id(lead), 'claim')}")
    assert r.status_code == 409
    assert r.json()["code"] == "lead_owned"

    token = signer.sign(anna.id, _id(lead), "claim")
    changed = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    r = await client.post(f"/v1/actions/{changed}")
    assert r.status_code == 403
    assert r.json()["code"] == "link_invalid"

    with monkeypatch.context() as m:  # a link signed 25 hours ago (links last 24)
        then = itsdangerous.timed.time.time() - 25 * 3600
        m.setattr(itsdangerous.timed.time, "time", lambda: then)
        old = signer.sign(anna.id, _id(lead), "claim")
    r = await client.get(f"/v1/actions/{old}", headers=HTML)
    assert r.status_code == 409
    assert "expired" in r.text


def _id(lead):
    return uuid.UUID(lead["id"])
