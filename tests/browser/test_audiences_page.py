"""The audiences page in a real browser (an admin): define an audience (a server validation
error shown under its field first), watch a visitor enter as events arrive through the
ingestion API and leave as the score decays (the refresher driven by its clock, as the API
tests do), the `audience.entered` webhook at a local receiver, the CSV with contacts."""

import asyncio
import csv
import io
import json
from datetime import timedelta

import pytest

from app.config import Settings
from app.db import utcnow
from app.scoring import rescoring
from tests.audiences.test_membership import compute, lead_of
from tests.browser.pw import APIResponse, Request, Route, expect
from tests.browser.test_dashboard import open_dashboard
from tests.factories import send
from tests.helpers import eventually
from tests.rules.helpers import publish, views, views_rule_set
from tests.webhooks.conftest import receiver, webhook_settings
from tests.webhooks.helpers import add_endpoint

pytestmark = pytest.mark.browser
__all__ = ["receiver"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The webhook goes to a receiver on 127.0.0.1.
    return settings.model_copy(update={"webhooks": webhook_settings()})


async def test_define_an_audience_and_watch_a_visitor_enter_and_leave(
    new_context, live_server, app, client, session, site, receiver
):
    # 10 points a product view, warm at 30, halved every hour.
    await publish(client, site.secret_key, views_rule_set(decay={"half_life": "1h"}))
    await add_endpoint(client, site, receiver.url, event_types=["audience.entered"])
    page = await open_dashboard(new_context, live_server, site.secret_key)
    await page.get_by_test_id("nav-audiences").click()
    await expect(page.get_by_test_id("audiences-page")).to_be_visible()
    await expect(page.get_by_test_id("aud-row")).to_have_count(3)  # the starter audiences

    # Define: warm or hot, 3+ views of fridges; a score range the wrong way round first.
    await page.get_by_test_id("aud-name").fill("Warm fridges")
    await page.get_by_test_id("aud-temperature-warm").check()
    await page.get_by_test_id("aud-temperature-hot").check()
    await page.get_by_test_id("aud-interest-category").fill("fridges")
    await page.get_by_test_id("aud-interest-views").fill("3")
    await page.get_by_test_id("aud-score_min").fill("50")
    await page.get_by_test_id("aud-score_max").fill("10")
    await page.get_by_test_id("aud-save").click()
    await expect(page.get_by_test_id("aud-error-score")).to_contain_text("score_min (50.0)")
    await expect(page.get_by_test_id("aud-row")).to_have_count(3)
    await page.get_by_test_id("aud-score_min").fill("")
    await page.get_by_test_id("aud-score_max").fill("")
    await page.get_by_test_id("aud-save").click()
    row = page.locator("[data-testid=aud-row][data-name='Warm fridges']")
    await expect(row.get_by_test_id("aud-count")).to_have_text("0")
    await compute(app, session)
    members = page.get_by_test_id("aud-member")
    await expect(page.get_by_test_id("aud-members-empty")).to_be_visible()

    # A visitor's events arrive: two views are not enough, four make them warm and a member.
    now = utcnow()
    await send(client, site, *views("v", 2, origin=now - timedelta(minutes=3)))
    await send(
        client,
        site,
        {"type": "identify", "anonymousId": "v", "messageId": "v-id", "timestamp": now.isoformat(),
         "traits": {"email": "anna@example.com", "name": "Anna", "city": "Kazan"}},
    )  # fmt: skip
    await send(client, site, *views("v", 2, start=2, origin=now - timedelta(minutes=3)))
    await expect(members).to_have_count(1)
    await expect(members.get_by_test_id("aud-member-label")).to_contain_text("Anna")
    await expect(members.get_by_test_id("temperature")).to_have_text("warm")
    await expect(row.get_by_test_id("aud-count")).to_have_text("1")
    lead = await lead_of(session, site, "v")

    # The webhook reached the receiver (a starter audience's may come too).
    async def entered() -> list[dict]:
        """the audience.entered of "Warm fridges" received"""
        with receiver.lock:
            events = [json.loads(r.body) for r in receiver.received]
        return [e for e in events if e["data"]["audience"]["name"] == "Warm fridges"]

    [event] = await eventually(entered, timeout=20)
    assert (event["type"], event["data"]["lead_id"]) == ("audience.entered", lead.id)

    # The CSV has them with their contacts.
    async with page.expect_download() as info:
        await page.get_by_test_id("aud-csv").click()
    download = await info.value
    with open(await download.path(), encoding="utf-8") as f:
        [member] = list(csv.DictReader(io.StringIO(f.read())))
    assert (member["lead_id"], member["email"], member["name"], member["city"]) == (
        lead.id,
        "anna@example.com",
        "Anna",
        "Kazan",
    )

    # The score decays: the refresher looks at the lead when due; it cools and leaves.
    background = app.state.background.context
    for _ in range(20):
        lead = await lead_of(session, site, "v")
        if lead.temperature == "cold":
            break
        assert lead.next_check_at is not None
        await rescoring.refresh_temperatures(background, lead.next_check_at)
    assert lead.temperature == "cold"
    await expect(members).to_have_count(0)
    await expect(row.get_by_test_id("aud-count")).to_have_text("0")

    # Delete it (after the browser's confirm).
    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_test_id("aud-delete").click()
    await expect(row).to_have_count(0)
    await expect(page.get_by_test_id("aud-row")).to_have_count(3)


async def test_a_list_answer_older_than_a_save_does_not_deselect_the_audience_just_made(
    new_context, live_server, site
):
    """The page polls the list. A poll answered before the save (without the new audience) but
    delivered after it used to deselect the audience just created, hiding its members."""
    page = await open_dashboard(new_context, live_server, site.secret_key)
    await page.get_by_test_id("nav-audiences").click()
    await expect(page.get_by_test_id("aud-row")).to_have_count(3)

    held: list[tuple[Route, APIResponse]] = []
    holding = asyncio.Event()

    async def hold_one_poll(route: Route, request: Request) -> None:
        if request.method != "GET" or holding.is_set():
            await route.continue_()
            return
        holding.set()
        held.append((route, await route.fetch()))  # answered now, before the save

    await page.route("**/v1/audiences", hold_one_poll)
    await asyncio.wait_for(holding.wait(), 10)  # the next poll, answered and held
    await page.get_by_test_id("aud-name").fill("Warm leads")
    await page.get_by_test_id("aud-temperature-warm").check()
    await page.get_by_test_id("aud-save").click()
    row = page.locator("[data-testid=aud-row][data-name='Warm leads']")
    await expect(row).to_be_visible()  # the save's own list request
    await expect(page.get_by_test_id("aud-members")).to_be_visible()
    route, stale = held[0]
    assert "Warm leads" not in await stale.text()
    await route.fulfill(response=stale)  # the poll's answer arrives last
    await page.wait_for_timeout(600)  # two polls' worth
    await expect(page.get_by_test_id("aud-members")).to_be_visible()
    await expect(page.locator("#aud-members-title")).to_have_text("Warm leads")
