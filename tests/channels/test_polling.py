"""Long polling, for a server Telegram cannot reach: the bot's webhook is cleared, and the
worker's getUpdates pass links the chat and acts on a button press as the webhook route does,
asking next time from after the last update handled."""

import pytest
from sqlalchemy import select

from app.background import BackgroundContext
from app.channel_actions.polling import poll_once
from app.channels.models import TelegramBot
from app.channels.telegram import BotApi
from app.crypto import secret_box
from app.db import make_sessionmaker
from app.scoring.scorer import RuleSetCache
from tests.channels.conftest import BOT_TOKEN
from tests.channels.helpers import button_update, start_update
from tests.factories import bearer, send
from tests.leads.helpers import hot
from tests.team.helpers import ALL_WEEK, awake_zone, make_token, make_user, pat

CHAT = 9001


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"run_background": False, "public_url": None})


async def test_updates_are_polled_linked_and_acted_on(
    client, session, site, bot_api, db_engine, settings
):
    anna = await make_user(
        session, site, "manager", "anna@shop.example", name="Anna",
        working_hours=ALL_WEEK, time_zone=awake_zone(),
    )  # fmt: skip
    headers = pat(await make_token(session, anna))
    r = await client.put(
        "/v1/channels/telegram",
        json={"token": BOT_TOKEN, "mode": "webhook"},
        headers=bearer(site.secret_key),
    )
    assert r.status_code == 422  # no public address for Telegram to post to
    assert r.json()["code"] == "telegram_refused"
    r = await client.put(
        "/v1/channels/telegram",
        json={"token": BOT_TOKEN, "mode": "polling"},
        headers=bearer(site.secret_key),
    )
    assert r.status_code == 200, r.text
    assert r.json()["webhook_url"] is None
    assert bot_api.of("deleteWebhook")
    code = (await client.post("/v1/me/channels/telegram/link", headers=headers)).json()["code"]
    await send(client, site, *hot("v"))
    [lead] = (await client.get("/v1/leads", headers=headers)).json()["data"]
    link, press = start_update(CHAT, code), button_update(CHAT, f"contacted:{lead['id']}")
    bot_api.updates = [link, press]

    context = BackgroundContext(settings, db_engine, make_sessionmaker(db_engine), RuleSetCache(0))
    api = BotApi(settings.telegram_api_base, 5)
    try:
        assert await poll_once(context, api, secret_box(settings), 0) == 1
        assert await poll_once(context, api, secret_box(settings), 0) == 1
    finally:
        await api.aclose()
    first, second = bot_api.of("getUpdates")
    assert first.params["offset"] == 0
    assert second.params["offset"] == press["update_id"] + 1  # nothing handled twice
    card = (await client.get(f"/v1/leads/{lead['id']}", headers=headers)).json()
    assert card["first_contacted_at"] is not None
    [answered] = bot_api.of("answerCallbackQuery")
    assert "clock has stopped" in answered.params["text"]
    bot = await session.scalar(select(TelegramBot))
    assert bot is not None
    assert bot.update_offset == press["update_id"] + 1
