"""The escalation ladder reaches people on their channels: with nobody acting on a hot lead,
the reminder goes to the owner's Telegram chat, the handover to both managers', the admins'
alert to the admin's, each as its own message. Time is driven by the timers' due_at."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from app.db import utcnow
from app.webhooks.models import WebhookDelivery
from app.webhooks.timers import TimerService
from tests.channels.helpers import link_chat, set_up_bot
from tests.factories import lead_by_anonymous_id, send, track
from tests.team.helpers import ALL_WEEK, awake_zone, make_token, make_user, pat
from tests.webhooks.conftest import Clock, webhook_settings

CHATS = {"anna": 5551001, "boris": 5551002, "boss": 5551003}


async def test_each_step_of_the_ladder_reaches_the_people_it_names(
    client, session, site, bot_api, db_engine, monkeypatch
):
    clock = Clock(datetime.now(UTC))
    monkeypatch.setattr("app.webhooks.consumer.utcnow", clock)
    timers = TimerService(db_engine, webhook_settings(), now=clock)
    secret = await set_up_bot(client, site, bot_api)
    people = {}
    for name, role in (("anna", "manager"), ("boris", "manager"), ("boss", "admin")):
        hours = {"working_hours": ALL_WEEK, "time_zone": awake_zone()} if role == "manager" else {}
        user = await make_user(session, site, role, f"{name}@shop.example", name=name, **hours)
        people[name] = user.id
        await link_chat(client, site, secret, pat(await make_token(session, user)), CHATS[name])
    chat_of = {people[n]: CHATS[n] for n in people}

    hot_at = clock.now.replace(microsecond=0)
    await send(client, site, track("v", "Contact Requested", timestamp=hot_at.isoformat()))
    lead = await lead_by_anonymous_id(session, site.site.id, "v")
    first = lead.owner_id
    assert first is not None
    second = people["boris"] if first == people["anna"] else people["anna"]
    await bot_api.wait_for(
        "sendMessage", lambda p: p["chat_id"] == str(chat_of[first]) and "Hot lead" in p["text"]
    )

    steps: list[tuple[int, str, list[uuid.UUID]]] = [
        (5, "Overdue", [first]),
        (10, "handed", [first, second]),
        (15, "Escalated", [people["boss"]]),
        (30, "at risk", [second, people["boss"]]),
    ]
    for minute, title, notified in steps:
        clock.now = hot_at + timedelta(minutes=minute)
        await timers.run_once()
        # The step's deliveries are due at the test's clock; the server's loop runs on the wall's.
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.status == "pending")
            .values(next_attempt_at=utcnow())
        )
        await session.commit()
        for user_id in notified:
            await bot_api.wait_for(
                "sendMessage",
                lambda p, chat=str(chat_of[user_id]), t=title: (
                    p["chat_id"] == chat and t in p["text"].split("\n", 1)[0]
                ),
            )
