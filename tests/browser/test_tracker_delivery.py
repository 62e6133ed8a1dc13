"""The tracker in a real browser on a cross-origin shop: nothing lost while offline, nothing
stored twice when the service fails requests it has already stored, nothing ever thrown into
the page when the service is down."""

import json
from typing import Any

import pytest

from tests.browser.conftest import message_counts
from tests.browser.pw import Request, Route, expect
from tests.conftest import free_port
from tests.helpers import eventually

pytestmark = pytest.mark.browser


async def queued_ids(page: Any) -> list[str]:
    state = await page.evaluate("leadheat._state()")
    return [m["messageId"] for m in state["queue"]]


async def tracker_loaded(page: Any) -> None:
    await page.wait_for_function("window.leadheat && window.leadheat.VERSION")


async def test_events_made_offline_arrive_once_back_online(new_context, make_shop, session, site):
    shop = make_shop()
    context = await new_context()
    page = await context.new_page()
    await page.goto(f"{shop.url}/fridges/1")
    await tracker_loaded(page)
    await page.wait_for_function("leadheat._state().queue.length === 0")  # page + product sent

    await context.set_offline(True)
    await page.click("#add")
    await page.click("#spa-3")  # single-page navigation: a page and a product view
    await page.click("#add")
    await page.fill("#phone", "+7 900 123-45-67")
    await page.click("#call-me")
    await page.evaluate("leadheat.flush()")  # a send attempt that fails: the events stay queued
    offline = await queued_ids(page)
    assert len(offline) >= 6, offline
    assert not set(offline) & set(await message_counts(session, site))

    await context.set_offline(False)  # the tracker sends at once on `online`
    await page.wait_for_function("leadheat._state().queue.length === 0")

    async def all_stored() -> dict[str, int] | None:
        counts = await message_counts(session, site)
        return counts if set(offline) <= set(counts) else None

    counts = await eventually(all_stored)
    assert all(n == 1 for n in counts.values()), counts
    assert len(counts) == len(offline) + 2  # the page and product view sent before going offline


async def test_a_batch_stored_but_answered_503_is_retried_and_stored_once(
    new_context, make_shop, session, site
):
    """The worst case for duplicates: the service stored the batch, but the tracker saw a 503
    and sends the same messages again."""
    shop = make_shop()
    context = await new_context()
    sent: list[list[str]] = []
    failures_left = 2

    async def flaky(route: Route, request: Request) -> None:
        nonlocal failures_left
        sent.append([m["messageId"] for m in json.loads(request.post_data or "{}")["batch"]])
        response = await route.fetch()  # the service stores the batch...
        if failures_left > 0:
            failures_left -= 1
            await route.fulfill(  # ...but the tracker is told it failed
                status=503,
                headers={"access-control-allow-origin": "*", "content-type": "application/json"},
                body='{"code": "unavailable", "message": "try again"}',
            )
        else:
            await route.fulfill(response=response)

    await context.route("**/v1/batch", flaky)
    page = await context.new_page()
    await page.goto(f"{shop.url}/fridges/2")
    await tracker_loaded(page)
    await page.click("#add")
    await page.click("#spa-3")
    await page.fill("#phone", "+7 900 765-43-21")
    await page.click("#call-me")
    await page.wait_for_function("leadheat._state().queue.length === 0", timeout=30_000)

    assert failures_left == 0
    every_id = {message_id for batch in sent for message_id in batch}
    assert sum(len(batch) for batch in sent) > len(every_id)  # some were sent more than once

    async def all_stored() -> dict[str, int] | None:
        counts = await message_counts(session, site)
        return counts if set(counts) == every_id else None

    counts = await eventually(all_stored)
    assert all(n == 1 for n in counts.values()), counts


async def test_the_tracker_never_throws_into_the_page_when_the_service_is_down(
    new_context, make_shop
):
    shop = make_shop(host=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    context = await new_context()
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{shop.url}/fridges/1")
    await tracker_loaded(page)
    await page.click("#add")
    await page.fill("#phone", "+7 900 000-00-00")
    await page.click("#call-me")
    after = await page.evaluate(
        """async () => {
            const api = window.leadheat;
            api.track("Custom", {a: 1});
            api.page("Named page", {x: 1});
            api.identify("user-1", {email: "a@b.example"});
            api.checkoutStarted({products: [{price: 10}]});
            api.orderCompleted({order_id: "o1", revenue: 10});
            api.track(undefined, null);
            api.productAdded(null);
            api.push(["no such method"]);
            api.push(null);
            await api.flush();
            return "still running";
        }"""
    )
    assert after == "still running"
    await expect(page.locator("#done")).to_have_text("We will call you back.")
    queued = await queued_ids(page)
    assert len(queued) >= 8  # everything is kept for when the service is back
    assert errors == []
