"""Segment's browser library (`@segment/analytics-next`, from the npm registry, unmodified) on
a shop page of another origin, in Chromium, delivers page, track, identify, alias and group to
Leadheat: with its default delivery and with batching, its retries stored once, switched over
either by the Segment.io destination's `apiHost` or by `cdnURL`.

The page never reaches a third party: with `apiHost`, the settings come from a local stand-in
for Segment's CDN (the document Segment serves, pointing at api.segment.io); with `cdnURL`,
from Leadheat itself."""

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
<script src="/segment.js"></script>
<script>
  const load = {load};
  window.analytics = SegmentBundle.AnalyticsBrowser.load(load.settings, load.options);
</script>
</head><body><h1>Fridge shop</h1></body></html>
"""


def segment_cdn_settings(write_key: str) -> dict[str, Any]:
    """What Segment's CDN answers for a source with no other destination."""
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "unbundledIntegrations": [],
                "addBundledMetadata": True,
                "maybeBundledConfigIds": {},
                "versionSettings": {"version": "4.4.7", "componentTypes": ["browser"]},
                "apiHost": "api.segment.io/v1",
            }
        },
        "plan": {"track": {"__default": {"enabled": True, "integrations": {}}}},
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0.1},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }


@pytest.fixture(scope="module")
def segment_js(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("segment")
    return bundle("segment-browser.mjs", "SegmentBundle", out).read_bytes()


@pytest.fixture
def proxy(live_server: LiveServer) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(upstream=live_server.url)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def started() -> Iterator[list[Any]]:
    servers: list[Any] = []
    yield servers
    for server in servers:
        server.stop()


CALLS = """async () => {
  await analytics.page("Catalog", "Fridges", {path: "/fridges"});
  await analytics.track("Product Viewed", {product_id: "f1", category: "fridges", price: 499});
  await analytics.alias("seg-user");  // from the anonymous visitor to the new user id
  await analytics.identify("seg-user", {email: "buyer@example.com", city: "Kazan"});
  await analytics.track("Product Added", {product_id: "f1", category: "fridges", price: 499});
  await analytics.group("acme", {name: "Acme"});
  const [instance] = await analytics;
  return instance.user().anonymousId();
}"""
TYPES = ["page", "track", "alias", "identify", "track", "group"]


@pytest.mark.parametrize("switch", ["apiHost", "cdnURL"])
@pytest.mark.parametrize("delivery", ["standard", "batching"])
async def test_analytics_next_delivers_every_call_once_through_a_lost_answer(
    new_context, session, segment_js, proxy, started, switch, delivery
):
    segment_cdn = StaticSite({})
    segment_cdn.start()
    started.append(segment_cdn)
    # The site accepts the shop's origin only: the page must be that origin's to send.
    shop = StaticSite({"/segment.js": ("text/javascript", segment_js)})
    shop.start()
    started.append(shop)
    site = await create_site(session, origins=[shop.url])
    leadheat = proxy.url.removeprefix("http://")
    segment_io: dict[str, Any] = {}
    if switch == "apiHost":
        segment_cdn.files[f"/v1/projects/{site.write_key}/settings"] = (
            "application/json",
            json.dumps(segment_cdn_settings(site.write_key)).encode(),
        )
        settings = {"writeKey": site.write_key, "cdnURL": segment_cdn.url}
        segment_io = {"apiHost": f"{leadheat}/v1", "protocol": "http"}
    else:
        settings = {"writeKey": site.write_key, "cdnURL": proxy.url}
    if delivery == "batching":
        segment_io["deliveryStrategy"] = {"strategy": "batching", "config": {"timeout": 200}}
    options = {"integrations": {"Segment.io": segment_io}} if segment_io else {}
    shop.files["/"] = (
        "text/html",
        PAGE.replace("{load}", json.dumps({"settings": settings, "options": options})).encode(),
    )
    # The first delivery is stored by Leadheat and then answered 503 on its way back.
    first = "/v1/b" if delivery == "batching" else "/v1/p"
    proxy.lose_once.add(first)

    run = await run_on_page(new_context, shop.url, CALLS, proxy)
    anonymous_id = run.result

    def retried() -> bool:
        return any("x-retry-count" in s.headers for s in proxy.posts(first))

    events = await stored_once_retried(session, site.site.id, len(TYPES), retried, run, proxy)
    assert sorted(e.type for e in events) == sorted(TYPES)
    retries = [s for s in proxy.posts(first) if "x-retry-count" in s.headers]
    assert [s.status for s in retries] == [200]  # the retry went through CORS, answered 200
    assert all(s.headers["origin"] == shop.url for s in proxy.seen if s.method == "POST")

    by_name = {e.name: e for e in events if e.type == "track"}
    assert by_name["Product Viewed"].properties == {
        "product_id": "f1",
        "category": "fridges",
        "price": 499,
    }
    assert by_name["Product Viewed"].anonymous_id == anonymous_id
    assert by_name["Product Added"].user_id == "seg-user"
    identify = next(e for e in events if e.type == "identify")
    assert identify.traits == {"email": "buyer@example.com", "city": "Kazan"}
    page_event = next(e for e in events if e.type == "page")
    assert page_event.name == "Fridges"
    assert page_event.properties["path"] == "/fridges"
    alias = next(e for e in events if e.type == "alias")
    assert (alias.previous_id, alias.user_id) == (anonymous_id, "seg-user")
    assert {e.context["library"]["name"] for e in events} == {"analytics.js"}
    event_leads = {e.lead_id for e in events if e.type != "group"}

    lead = await lead_by_anonymous_id(session, site.site.id, anonymous_id)
    assert lead.contacts == {"email": "buyer@example.com"}
    assert lead.cart["item_count"] == 1
    assert event_leads == {lead.id}
    await session.rollback()

    local = (shop.url, proxy.url, segment_cdn.url)
    assert [url for url in run.requested if not url.startswith(local)] == []
    if switch == "cdnURL":
        assert not any(url.startswith(segment_cdn.url) for url in run.requested)
