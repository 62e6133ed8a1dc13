"""The dashboard's audiences card in a real browser: each saved audience with its members now,
a visitor entering as events arrive."""

from datetime import timedelta

import pytest

from app.db import utcnow
from tests.browser.pw import expect
from tests.factories import bearer, send
from tests.rules.helpers import publish, views, views_rule_set

pytestmark = pytest.mark.browser


async def test_the_audiences_card_counts_members_as_visitors_enter(
    new_context, live_server, client, site
):
    await publish(client, site.secret_key, views_rule_set())
    r = await client.post(
        "/v1/audiences",
        headers=bearer(site.secret_key),
        json={"name": "Fridge fans", "filters": {"interests": [{"category": "fridges",
                                                                 "min_views": 2}]}},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    context = await new_context(viewport={"width": 1360, "height": 900})
    # Poll fast, and read the stats (and audiences) again at every change.
    await context.add_init_script("window.LEADHEAT_DASHBOARD = {pollMs: 250, statsMinMs: 0};")
    page = await context.new_page()
    await page.goto(f"{live_server.url}/dashboard")
    await page.get_by_test_id("secret-key").fill(site.secret_key)
    await page.get_by_test_id("sign-in").click()
    fans = page.locator("[data-testid=audience][data-name='Fridge fans']")
    await expect(fans.get_by_test_id("audience-count")).to_have_text("0")
    await expect(page.get_by_test_id("audience")).to_have_count(4)  # and the three starters

    await send(client, site, *views("v", 2, origin=utcnow() - timedelta(minutes=3)))
    await expect(fans.get_by_test_id("audience-count")).to_have_text("1")
