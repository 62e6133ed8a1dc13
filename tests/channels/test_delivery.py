"""Channel deliveries go through the outbox, driven by hand with a controllable clock: a
failing Bot API (500, then 429 with retry_after) is retried on the webhooks' schedule and
every attempt is logged; Slack-compatible channels (a person's and the site's team channel)
get `text` and `blocks`; only CHANNEL_EVENT_TYPES reach channels, to the recipients named."""

import uuid

import orjson
import pytest
from sqlalchemy import select

from app.db import utcnow
from app.webhooks import outbox
from app.webhooks.delivery_loop import DeliveryService
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.channels.helpers import link_chat, set_up_bot
from tests.factories import bearer, send
from tests.leads.helpers import hot
from tests.team.helpers import ALL_WEEK, awake_zone, make_token, make_user, pat
from tests.webhooks.conftest import webhook_settings

CHAT = 4242


@pytest.fixture
def settings(settings):
    """No background loops: each test sends by hand, at the times it chooses."""
    return settings.model_copy(update={"run_background": False})


@pytest.fixture
async def worker(db_engine, clock, box, settings):
    service = DeliveryService(db_engine, webhook_settings(), box, now=clock, channels=settings)
    yield service
    await service.aclose()


async def _anna(session, site):
    anna = await make_user(
        session, site, "manager", "anna@shop.example", name="Anna",
        working_hours=ALL_WEEK, time_zone=awake_zone(),
    )  # fmt: skip
    return anna, pat(await make_token(session, anna))


async def test_a_failing_bot_api_is_retried_through_the_outbox(
    client, session, site, bot_api, worker, clock
):
    _anna_user, headers = await _anna(session, site)
    secret = await set_up_bot(client, site, bot_api)
    await link_chat(client, site, secret, headers, CHAT)
    bot_api.failures["sendMessage"] = [
        (500, "Internal Server Error", None),
        (429, "Too Many Requests: retry after 42", 42),
    ]
    await send(client, site, *hot("v"))
    assert await worker.run_once() == 1  # lead.hot to Anna's chat: 500
    clock.advance(seconds=6)  # the first retry is due after 5 s
    assert await worker.run_once() == 1  # 429, retry_after 42
    clock.advance(seconds=30)
    assert await worker.run_once() == 0  # Telegram's wait is honoured, not the schedule's 300 s
    clock.advance(seconds=13)
    assert await worker.run_once() == 1
    sent = [c for c in bot_api.of("sendMessage") if c.params["chat_id"] == str(CHAT)]
    assert len(sent) == 3
    attempts = (await session.scalars(select(WebhookAttempt).order_by(WebhookAttempt.id))).all()
    assert [(a.status_code, a.succeeded) for a in attempts] == [
        (500, False),
        (429, False),
        (200, True),
    ]
    assert "retry after 42" in (attempts[1].response_body or "")
    [delivery] = (await session.scalars(select(WebhookDelivery))).all()
    assert delivery.status == "succeeded"


async def test_a_chat_that_blocked_the_bot_is_disabled_at_once(
    client, session, site, bot_api, worker
):
    _anna_user, headers = await _anna(session, site)
    secret = await set_up_bot(client, site, bot_api)
    await link_chat(client, site, secret, headers, CHAT)
    bot_api.failures["sendMessage"] = [(403, "Forbidden: bot was blocked by the user", None)]
    await send(client, site, *hot("v"))
    assert await worker.run_once() == 1
    [channel] = (await client.get("/v1/me/channels", headers=headers)).json()
    assert channel["enabled"] is False
    assert channel["disabled_reason"] == "Telegram refused: Forbidden: bot was blocked by the user"


async def test_slack_compatible_channels_get_text_and_blocks(
    client, session, site, worker, receiver
):
    _anna_user, headers = await _anna(session, site)
    r = await client.post("/v1/me/channels", json={"kind": "slack"}, headers=headers)
    assert r.status_code == 422  # the incoming webhook's URL is needed
    r = await client.post(
        "/v1/me/channels", json={"kind": "slack", "url": receiver.url + "/anna"}, headers=headers
    )
    assert r.status_code == 201, r.text
    assert r.json()["address"] == "slack:127.0.0.1"  # the URL is a credential: not shown
    r = await client.post(
        "/v1/channels", json={"url": receiver.url + "/team"}, headers=bearer(site.secret_key)
    )
    assert r.status_code == 201, r.text
    team = r.json()
    r = await client.post(f"/v1/channels/{team['id']}/test", headers=bearer(site.secret_key))
    assert r.status_code == 202, r.text
    assert await worker.run_once() == 1
    [test] = await receiver.wait_for(1)
    assert orjson.loads(test.body)["text"].startswith("A test alert from Leadheat")
    receiver.received.clear()

    await send(client, site, *hot("v"))
    assert await worker.run_once() == 2
    got = {g.path: orjson.loads(g.body) for g in await receiver.wait_for(2)}
    for body in got.values():
        assert body["text"].startswith("Hot lead: ")
        assert body["blocks"][0] == {
            "type": "header",
            "text": {"type": "plain_text", "text": "Hot lead"},
        }
        assert "<tel:+79000000000|+7 900 000 00 00>" in body["blocks"][1]["text"]["text"]
    # One-click actions only for the person the message is for, not in the team's channel.
    assert "/v1/actions/" in got["/hooks/anna"]["text"]
    assert "/v1/actions/" not in got["/hooks/team"]["text"]


async def test_only_channel_event_types_reach_channels_and_notify_names_the_recipients(
    client, session, site, db_engine
):
    anna, _ = await _anna(session, site)
    bob = await make_user(session, site, "manager", "bob@shop.example", on_duty=False)
    gone = await make_user(session, site, "manager", "gone@shop.example", on_duty=False)
    gone.active = False  # deactivated: their channel stays, and gets nothing
    now = utcnow()
    for user in (anna, bob, gone):
        session.add(
            WebhookEndpoint(
                site_id=site.site.id, user_id=user.id, kind="email", url=f"mailto:{user.email}",
                event_types=[], secret_encrypted="", created_at=now,
            )
        )  # fmt: skip
    await session.commit()
    owner = {"id": str(anna.id), "name": "Anna", "email": anna.email}
    messages = [
        outbox.NewMessage(site.site.id, outbox.LEAD_HOT, {"owner": owner}),
        outbox.NewMessage(site.site.id, outbox.LEAD_TEMPERATURE_CHANGED, {"owner": owner}),
        outbox.NewMessage(
            site.site.id,
            outbox.LEAD_FIRST_CONTACT_ESCALATED,
            {"owner": owner, "notify": [str(anna.id), str(bob.id), str(gone.id)]},
        ),
        outbox.NewMessage(site.site.id, outbox.LEAD_FIRST_CONTACT_OVERDUE, {"owner": None}),
    ]
    async with db_engine.begin() as conn:
        ids = await outbox.enqueue(conn, messages, now)
    assert len(ids) == 2  # the temperature change and the ownerless overdue go nowhere
    rows = (
        await session.execute(
            select(WebhookDelivery.message_id, WebhookEndpoint.user_id).join(
                WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id
            )
        )
    ).all()
    by_message: dict[uuid.UUID, set[uuid.UUID]] = {}
    for message_id, user_id in rows:
        by_message.setdefault(message_id, set()).add(user_id)
    assert by_message == {ids[0]: {anna.id}, ids[1]: {anna.id, bob.id}}
