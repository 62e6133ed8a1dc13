"""End to end, on both databases: a visitor turns hot through the ingestion API, its owner
(assigned by round-robin) gets the alert in their linked Telegram chat (the local fake Bot
API) and in their inbox (a local SMTP server), presses "Contacted" (a callback update posted
to the webhook route with the secret header) and the clock stops. Refusals: a wrong or missing
secret, a chat that is not linked."""

from sqlalchemy import select

from app.webhooks.models import LeadTimer
from app.webhooks.timers import CART_KINDS
from tests.channels.helpers import button_update, link_chat, post_update, set_up_bot
from tests.factories import send
from tests.leads.helpers import hot
from tests.team.helpers import ALL_WEEK, awake_zone, make_token, make_user, pat

CHAT = 5550001


def _hot_alert(params):
    return params.get("chat_id") == str(CHAT) and params["text"].startswith("<b>Hot lead</b>")


async def test_hot_lead_reaches_the_owner_who_presses_contacted(
    client, session, site, bot_api, inbox
):
    anna = await make_user(
        session, site, "manager", "anna@shop.example", name="Anna",
        working_hours=ALL_WEEK, time_zone=awake_zone(),
    )  # fmt: skip
    anna_headers = pat(await make_token(session, anna))
    secret = await set_up_bot(client, site, bot_api)
    await link_chat(client, site, secret, anna_headers, CHAT)
    linked = await bot_api.wait_for("sendMessage", lambda p: p["chat_id"] == CHAT)
    assert "Anna" in linked.params["text"]
    r = await client.post("/v1/me/channels", json={"kind": "email"}, headers=anna_headers)
    assert r.status_code == 201, r.text
    r = await client.get("/v1/me/channels", headers=anna_headers)
    assert sorted(c["address"] for c in r.json()) == ["mailto:anna@shop.example", f"tg:{CHAT}"]

    await send(client, site, *hot("visitor-1"))
    alert = await bot_api.wait_for("sendMessage", _hot_alert)
    text = alert.params["text"]
    assert alert.params["parse_mode"] == "HTML"
    assert "+7 900 000 00 00" in text  # the contact, tappable in Telegram
    assert "Contact by:" in text
    assert "Owner:</b> Anna" in text
    [buttons] = alert.params["reply_markup"]["inline_keyboard"]
    lead_id = buttons[1]["callback_data"].removeprefix("contacted:")
    assert [b["text"] for b in buttons] == ["I'm on it", "Contacted", "Open"]
    assert buttons[2]["url"] == f"http://leadheat.test/dashboard?lead={lead_id}"

    mail = await inbox.wait_for("anna@shop.example", "Hot lead")
    plain = mail.get_body(("plain",)).get_content()
    page = mail.get_body(("html",)).get_content()
    assert "Contacted: http://leadheat.test/v1/actions/" in plain
    assert 'href="tel:+79000000000"' in page

    # Telegram's secret header is required, and must be the one it was given.
    update = button_update(CHAT, f"contacted:{lead_id}")
    assert (await post_update(client, site, None, update)).status_code == 401
    r = await post_update(client, site, "not-the-secret", update)
    assert r.status_code == 403
    assert r.json()["code"] == "wrong_secret_token"
    # A chat nobody linked is answered, and nothing is done.
    stranger = button_update(777, f"contacted:{lead_id}")
    assert (await post_update(client, site, secret, stranger)).status_code == 200
    refused = await bot_api.wait_for(
        "answerCallbackQuery",
        lambda p: p["callback_query_id"] == stranger["callback_query"]["id"],
    )
    assert refused.params["show_alert"] is True
    lead = (await client.get(f"/v1/leads/{lead_id}", headers=anna_headers)).json()
    assert lead["first_contacted_at"] is None

    r = await post_update(client, site, secret, update)
    assert r.status_code == 200, r.text
    lead = (await client.get(f"/v1/leads/{lead_id}", headers=anna_headers)).json()
    assert lead["first_contacted_at"] is not None
    assert lead["status"] == "contacted"
    timers = (
        await session.scalars(select(LeadTimer.status).where(LeadTimer.kind.not_in(CART_KINDS)))
    ).all()  # the first-contact clock's steps
    assert timers
    assert "pending" not in timers
    answered = await bot_api.wait_for(
        "answerCallbackQuery", lambda p: p["callback_query_id"] == update["callback_query"]["id"]
    )
    assert "clock has stopped" in answered.params["text"]
    await bot_api.wait_for("editMessageReplyMarkup", lambda p: p["chat_id"] == CHAT)
    # The team's numbers count the contact, for its owner.
    period = {"from": "2026-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z", "by": "owner"}
    r = await client.get("/v1/stats/speed-to-lead", params=period, headers=anna_headers)
    assert r.status_code == 200, r.text
    [row] = [o for o in r.json()["by_owner"] if o["owner_id"] == str(anna.id)]
    assert (row["hot_leads"], row["contacted"], row["overdue_now"]) == (1, 1, 0)
