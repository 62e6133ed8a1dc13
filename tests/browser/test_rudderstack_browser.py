"""RudderStack's JavaScript SDK v3 (`@rudderstack/analytics-js`, from the npm registry,
unmodified) on a shop page of another origin, in Chromium, with `dataPlaneUrl` and
`configUrl` at Leadheat, delivers page, track, identify, alias and group, each stored once,
also through a lost answer; the page reaches no third party."""

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.servers import FaultyProxy, StaticSite, run_on_page, stored_once_retried
from tests.conftest import LiveServer
from tests.factories import create_site, lead_by_anonymous_id
from tests.npm_clients import bundle

pytestmark = pytest.mark.browser

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Fridge shop</title>
<script src="/rudderstack.js"></script>
<script>
  const load = {load};
  window.rudderanalytics = new RudderBundle.RudderAnalytics();
  window.rudderanalytics.load(load.writeKey, load.dataPlaneUrl, load.options);
</script>
</head><body><h1>Fridge shop</h1></body></html>
"""

# Each call waits for the SDK's callback (the event is queued for delivery by then).
CALLS = """async () => {
  const ra = window.rudderanalytics;
  await new Promise((resolve) => ra.ready(resolve));
  const call = (method, ...args) => new Promise((resolve) => ra[method](...args, resolve));
  await call("page", "Catalog", "Fridges", {path: "/fridges"});
  await call("track", "Product Viewed", {product_id: "f1", category: "fridges", price: 499});
  await call("alias", "rs-user");
  await call("identify", "rs-user", {email: "buyer@example.com", city: "Kazan"});
  await call("track", "Product Added", {product_id: "f1", category: "fridges", price: 499});
  await call("group", "acme", {name: "Acme"});
  return ra.getAnonymousId();
}"""
TYPES = ["page", "track", "alias", "identify", "track", "group"]


@pytest.fixture(scope="module")
def rudderstack_js(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("rudderstack")
    return bundle("rudderstack-browser.mjs", "RudderBundle", out).read_bytes()


@pytest.fixture
def proxy(live_server: LiveServer) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(upstream=live_server.url)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.mark.parametrize("batching", [False, True])
async def test_rudderstack_v3_delivers_every_call_once_through_a_lost_answer(
    new_context, session, rudderstack_js, proxy, batching
):
    shop = StaticSite({"/rudderstack.js": ("text/javascript", rudderstack_js)})
    shop.start()
    try:
        await _deliver(new_context, session, shop, proxy, batching)
    finally:
        shop.stop()


async def _deliver(
    new_context: Any, session: Any, shop: StaticSite, proxy: FaultyProxy, batching: bool
) -> None:
    site = await create_site(session, origins=[shop.url])
    options: dict[str, Any] = {"configUrl": proxy.url, "logLevel": "ERROR"}
    if batching:
        options["queueOptions"] = {"batch": {"enabled": True, "maxItems": 3, "flushInterval": 200}}
    load = {"writeKey": site.write_key, "dataPlaneUrl": proxy.url, "options": options}
    shop.files["/"] = ("text/html", PAGE.replace("{load}", json.dumps(load)).encode())
    # The first delivery is stored by Leadheat and then answered 503 on its way back.
    first = "/v1/batch" if batching else "/v1/page"
    proxy.lose_once.add(first)

    run = await run_on_page(new_context, shop.url, CALLS, proxy)
    anonymous_id = run.result
    events = await stored_once_retried(
        session, site.site.id, len(TYPES), lambda: len(proxy.posts(first)) > 1, run, proxy
    )
    assert sorted(e.type for e in events) == sorted(TYPES)
    assert [s.status for s in proxy.posts(first)][:2] == [503, 200]
    assert all(s.headers["origin"] == shop.url for s in proxy.seen if s.method == "POST")

    by_name = {e.name: e for e in events if e.type == "track"}
    assert by_name["Product Viewed"].properties == {
        "product_id": "f1",
        "category": "fridges",
        "price": 499,
    }
    assert by_name["Product Viewed"].anonymous_id == anonymous_id
    assert by_name["Product Added"].user_id == "rs-user"
    identify = next(e for e in events if e.type == "identify")
    assert identify.traits["email"] == "buyer@example.com"
    assert identify.traits["city"] == "Kazan"
    alias = next(e for e in events if e.type == "alias")
    assert alias.user_id == "rs-user"
    assert {e.context["library"]["name"] for e in events} == {"RudderLabs JavaScript SDK"}
    event_leads = {e.lead_id for e in events if e.type != "group"}

    lead = await lead_by_anonymous_id(session, site.site.id, anonymous_id)
    assert lead.contacts == {"email": "buyer@example.com"}
    assert lead.cart["item_count"] == 1
    assert event_leads == {lead.id}
    await session.rollback()

    assert [url for url in run.requested if not url.startswith((shop.url, proxy.url))] == []
