"""Channels in the dashboard: an admin sets the site's Telegram bot on the team page; a
manager follows a message's "open" link (/dashboard?lead=<id>)
and, once signed in, sees that lead's card; in their settings links Telegram (the test plays
the bot's side: it posts the `/start <code>` update to the webhook route with the secret
header, as Telegram would), sees "linked" and sends a test alert that reaches the local fake
Bot API."""

import asyncio
import re

import httpx
import pytest

from app.config import Settings
from tests.browser.pw import expect
from tests.channels.conftest import (  # noqa: F401 (fixtures)
    BOT_TOKEN,
    BOT_USERNAME,
    FakeBotApi,
    Inbox,
    bot_api,
    channel_settings,
    inbox,
)
from tests.channels.helpers import post_update, start_update
from tests.factories import send
from tests.leads.helpers import hot, id_of
from tests.team.helpers import PASSWORD, make_user

pytestmark = pytest.mark.browser
FAST_POLLING = "window.LEADHEAT_DASHBOARD = {pollMs: 500, linkPollMs: 200};"
CHAT = 5550042


async def _page(new_context, url: str):
    context = await new_context()
    await context.add_init_script(FAST_POLLING)
    page = await context.new_page()
    await page.goto(url)
    return page


async def _sign_in(page, email: str) -> None:
    await page.get_by_test_id("email").fill(email)
    await page.get_by_test_id("password").fill(PASSWORD)
    await page.get_by_test_id("sign-in-password").click()


@pytest.fixture
def settings(database_url: str, bot_api: FakeBotApi, inbox: Inbox) -> Settings:  # noqa: F811
    return channel_settings(database_url, bot_api, inbox)


async def test_a_bot_set_up_then_a_manager_links_telegram_and_tests_it(
    new_context,
    live_server,
    session,
    site,
    bot_api,  # noqa: F811
):
    await make_user(session, site, "admin", "olga@shop.example", name="Olga")
    await make_user(session, site, "manager", "anna@shop.example", name="Anna")
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        await send(client, site, *hot("visitor-1"))
    lead_id = await id_of(session, site, "visitor-1")
    await session.rollback()  # no read transaction left to hold off the server's writes

    # The admin sets the site's bot on the team page (checked with the fake Bot API).
    admin = await _page(new_context, f"{live_server.url}/dashboard#team")
    await _sign_in(admin, "olga@shop.example")
    await admin.get_by_test_id("bot-token").fill(BOT_TOKEN)
    await admin.get_by_test_id("bot-save").click()
    await expect(admin.get_by_test_id("bot-username")).to_have_text(f"@{BOT_USERNAME}")
    [set_webhook] = bot_api.of("setWebhook")
    secret = set_webhook.params["secret_token"]

    # The manager follows an alert's "open" link: the lead's card, once signed in.
    page = await _page(new_context, f"{live_server.url}/dashboard?lead={lead_id}")
    await _sign_in(page, "anna@shop.example")
    await expect(page.get_by_test_id("lead-detail")).to_be_visible()
    await expect(page.locator(f'[data-lead-id="{lead_id}"]').first).to_have_class(
        re.compile("is-open")
    )

    await page.get_by_test_id("settings-open").click()
    telegram = page.get_by_test_id("channel-telegram")
    await expect(telegram.get_by_test_id("telegram-status")).to_have_text("not linked")
    await telegram.get_by_test_id("telegram-link-button").click()
    url = await telegram.get_by_test_id("telegram-link-url").text_content()
    assert url is not None
    matched = re.fullmatch(r"https://t\.me/leadheat_test_bot\?start=([A-Za-z0-9_-]+)", url)
    assert matched, url
    await expect(telegram.get_by_test_id("telegram-link-expiry")).to_contain_text("expires at")

    # The person presses Start in Telegram: Telegram posts the update to the webhook route.
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        r = await post_update(client, site, secret, start_update(CHAT, matched[1]))
        assert r.status_code == 200, r.text
    await expect(telegram.get_by_test_id("telegram-status")).to_contain_text("linked (chat")
    await expect(telegram.get_by_test_id("telegram-link")).to_be_hidden()

    await telegram.get_by_test_id("telegram-test").click()
    await expect(page.get_by_test_id("toast")).to_contain_text("Test alert sent")
    alert = await bot_api.wait_for(
        "sendMessage", lambda p: p["chat_id"] == str(CHAT) and "nobody (a test)" in p["text"]
    )
    assert alert.token == bot_api.token


async def test_a_bot_saved_while_the_team_page_loads_stays_drawn(
    new_context,
    live_server,
    session,
    site,
    bot_api,  # noqa: F811
):
    """The team page's load (bot, then team channels) may answer after the admin has already
    saved a bot: it must not draw "No bot yet" over the bot just set up. The test holds the
    load's channels request until the save has been drawn."""
    await make_user(session, site, "admin", "olga@shop.example", name="Olga")
    await session.rollback()
    admin = await _page(new_context, f"{live_server.url}/dashboard#team")
    release = asyncio.Event()

    async def hold_channel_reads(route) -> None:
        if route.request.method == "GET":
            await release.wait()
        await route.continue_()

    await admin.route(re.compile(r".*/v1/channels$"), hold_channel_reads)
    await _sign_in(admin, "olga@shop.example")
    await expect(admin.get_by_test_id("bot-token")).to_be_visible()
    await admin.get_by_test_id("bot-token").fill(BOT_TOKEN)
    await admin.get_by_test_id("bot-save").click()
    await expect(admin.get_by_test_id("bot-username")).to_have_text(f"@{BOT_USERNAME}")

    release.set()  # the load started at sign-in answers now, after the save
    await expect(admin.locator("#team-channels-empty")).to_be_visible()
    await expect(admin.get_by_test_id("bot-username")).to_have_text(f"@{BOT_USERNAME}")
    await expect(admin.get_by_test_id("bot-status")).to_have_attribute("data-state", "webhook")
