"""Setting up channels through the API, as a shop's admin and a person do."""

import uuid
from typing import Any

import httpx

from app.sites.service import CreatedSite
from tests.channels.conftest import BOT_TOKEN, FakeBotApi
from tests.factories import bearer

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


async def set_up_bot(client: httpx.AsyncClient, site: CreatedSite, bot_api: FakeBotApi) -> str:
    """The site's bot in webhook mode; answers the secret token Telegram was given."""
    r = await client.put(
        "/v1/channels/telegram",
        json={"token": BOT_TOKEN, "mode": "webhook"},
        headers=bearer(site.secret_key),
    )
    assert r.status_code == 200, r.text
    [call] = bot_api.of("setWebhook")
    assert call.params["url"] == r.json()["webhook_url"]
    return str(call.params["secret_token"])


async def post_update(
    client: httpx.AsyncClient, site: CreatedSite, secret: str | None, update: dict[str, Any]
) -> httpx.Response:
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    return await client.post(f"/v1/telegram/{site.site.id}/webhook", json=update, headers=headers)


_update_ids = iter(range(1, 1_000_000))


def start_update(chat_id: int, code: str) -> dict[str, Any]:
    return {
        "update_id": next(_update_ids),
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": chat_id, "type": "private"},
            "from": {"id": chat_id, "is_bot": False, "first_name": "Anna"},
            "text": f"/start {code}",
        },
    }


def button_update(chat_id: int, data: str, from_id: int | None = None) -> dict[str, Any]:
    return {
        "update_id": next(_update_ids),
        "callback_query": {
            "id": uuid.uuid4().hex,
            "from": {"id": from_id or chat_id, "is_bot": False, "first_name": "Anna"},
            "chat_instance": "1",
            "data": data,
            "message": {
                "message_id": 101,
                "date": 0,
                "chat": {"id": chat_id, "type": "private"},
            },
        },
    }


async def link_chat(
    client: httpx.AsyncClient, site: CreatedSite, secret: str, headers: dict[str, str], chat_id: int
) -> None:
    """The person (`headers`) gets a deep link and presses Start in chat `chat_id`."""
    r = await client.post("/v1/me/channels/telegram/link", headers=headers)
    assert r.status_code == 201, r.text
    link = r.json()
    assert link["url"] == f"https://t.me/leadheat_test_bot?start={link['code']}"
    r = await post_update(client, site, secret, start_update(chat_id, link["code"]))
    assert r.status_code == 200, r.text
