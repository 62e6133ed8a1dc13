"""Telegram sends an update again when it saw no answer: an update already handled (its
`update_id`, per bot) is answered 200 and ignored, on both databases; another bot of the site
starts its own sequence of update ids."""

import asyncio
import uuid

from sqlalchemy import func, select

from app.webhooks.models import LeadContact
from tests.channels.helpers import button_update, link_chat, post_update, set_up_bot
from tests.factories import bearer, send
from tests.leads.helpers import hot, id_of
from tests.team.helpers import make_token, make_user, pat

CHAT = 5550077
OTHER_BOT_TOKEN = "654321:ANOTHER-token_abcdefghijklmnopq"


async def _contacts(session, lead_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count()).select_from(LeadContact).where(LeadContact.lead_id == lead_id)
    )
    await session.rollback()
    return count or 0


async def test_a_redelivered_contacted_press_records_one_contact(client, session, site, bot_api):
    anna = await make_user(session, site, "manager", "anna@shop.example", name="Anna")
    secret = await set_up_bot(client, site, bot_api)
    await link_chat(client, site, secret, pat(await make_token(session, anna)), CHAT)
    await send(client, site, *hot("visitor-1"))
    lead_id = uuid.UUID(await id_of(session, site, "visitor-1"))

    press = button_update(CHAT, f"contacted:{lead_id}")
    for _ in range(2):  # the second is Telegram's redelivery of the same update
        r = await post_update(client, site, secret, press)
        assert r.status_code == 200, r.text
    assert await _contacts(session, lead_id) == 1
    callback_id = press["callback_query"]["id"]
    await bot_api.wait_for("answerCallbackQuery", lambda p: p["callback_query_id"] == callback_id)
    answered = [
        c for c in bot_api.of("answerCallbackQuery") if c.params["callback_query_id"] == callback_id
    ]
    assert len(answered) == 1  # the redelivery is not answered in Telegram again

    # A new press (a new update) is handled once, even when its copies arrive at once.
    again = button_update(CHAT, f"contacted:{lead_id}")
    answers = await asyncio.gather(*(post_update(client, site, secret, again) for _ in range(2)))
    assert [r.status_code for r in answers] == [200, 200]
    assert await _contacts(session, lead_id) == 2

    # Another bot for the site: its update ids are its own, so the same id is a new update.
    bot_api.token = OTHER_BOT_TOKEN
    r = await client.put(
        "/v1/channels/telegram",
        json={"token": OTHER_BOT_TOKEN, "mode": "webhook"},
        headers=bearer(site.secret_key),
    )
    assert r.status_code == 200, r.text
    new_secret = bot_api.of("setWebhook")[-1].params["secret_token"]
    assert (await post_update(client, site, new_secret, press)).status_code == 200
    assert await _contacts(session, lead_id) == 3
