"""Warnings in the preview and publish answers: said, never refused, each naming its rule."""

from datetime import UTC, datetime, timedelta

from app.scoring.defaults import DEFAULT_RULE_SET
from tests.factories import T0, bearer, send
from tests.rules.helpers import views, views_rule_set

DEFAULT_EVENTS = sorted(
    {r["event"] for r in DEFAULT_RULE_SET["behaviour"]}
    | {s["event"] for r in DEFAULT_RULE_SET["hard"] for s in r["steps"]} - {"*", "page"}
)


def _yesterday() -> datetime:
    return datetime.now(UTC) - timedelta(days=1)


def _track(visitor: str, name: str, origin: datetime, index: int = 0) -> dict:
    return {
        "type": "track",
        "event": name,
        "anonymousId": visitor,
        "messageId": f"{visitor}-{name}-{index}-{origin.timestamp():.0f}",
        "timestamp": (origin + timedelta(minutes=index)).isoformat(),
        "properties": {"product_id": "p1"},
    }


async def _preview_and_publish_warnings(client, site, document: dict) -> list[list[dict]]:
    """The warnings of a preview of `document`, then of its publish: both must say the same."""
    key = bearer(site.secret_key)
    preview = await client.post("/v1/rules/preview", headers=key, json=document)
    assert preview.status_code == 200, preview.text
    published = await client.put("/v1/rules", headers=key, json=document)
    assert published.status_code == 200, published.text
    return [preview.json()["warnings"], published.json()["warnings"]]


async def test_a_misspelt_event_is_warned_with_the_closest_name_seen(client, site):
    yesterday = _yesterday()
    await send(client, site, *views("ann", 2, origin=yesterday))
    await send(client, site, _track("ann", "Product Added", yesterday, 5))
    document = views_rule_set(
        behaviour=[{"id": "cart", "event": "Prodcut Added", "points": 15, "cap": 30}]
    )

    for warnings in await _preview_and_publish_warnings(client, site, document):
        assert [(w["rule"], w["code"], w["suggestion"]) for w in warnings] == [
            ("cart", "unknown_event", "Product Added")
        ]
        assert "Did you mean `Product Added`?" in warnings[0]["message"]
        assert "`Prodcut Added`" in warnings[0]["message"]


async def test_an_event_seen_only_more_than_30_days_ago_is_warned_without_a_suggestion(
    client, site
):
    yesterday = _yesterday()
    await send(client, site, *views("ann", 2, origin=yesterday))
    await send(client, site, _track("bob", "Checkout Started", T0))  # over two months ago
    document = views_rule_set(
        hard=[{"id": "checkout", "steps": [{"event": "Checkout Started"}], "hold": "1d"}]
    )

    for warnings in await _preview_and_publish_warnings(client, site, document):
        assert [(w["rule"], w["code"], w["suggestion"]) for w in warnings] == [
            ("checkout", "unknown_event", None)
        ]


async def test_a_negative_weight_is_warned_and_taken(client, site):
    await send(client, site, *views("ann", 2, origin=_yesterday()))
    document = views_rule_set(
        fit=[
            {
                "id": "far-away",
                "type": "match",
                "field": "city",
                "weight": -10,
                "options": [{"values": ["Vladivostok"], "coefficient": 1}],
            }
        ]
    )

    for warnings in await _preview_and_publish_warnings(client, site, document):
        assert [(w["rule"], w["code"]) for w in warnings] == [("far-away", "negative_weight")]
    active = (await client.get("/v1/rules", headers=bearer(site.secret_key))).json()
    assert active["fit"][0]["weight"] == -10


async def test_thresholds_no_lead_can_reach_are_warned(client, site):
    await send(client, site, *views("ann", 2, origin=_yesterday()))
    # At most 20 (views, capped) + 5 (once) + 8 (visits, best band 0.8 x 10) = 33.
    capped = views_rule_set(
        warm=30,
        hot=60,
        behaviour=[
            {"id": "once", "event": "Product Viewed", "points": 5, "frequency": "once_per_lead"}
        ],
        fit=[
            {
                "id": "visits",
                "type": "range",
                "field": "visits",
                "weight": 10,
                "bands": [{"min": 2, "max": 4, "coefficient": 0.5}, {"min": 4, "coefficient": 0.8}],
            }
        ],
    )
    capped["behaviour"][0]["cap"] = 20
    for warnings in await _preview_and_publish_warnings(client, site, capped):
        assert [(w["rule"], w["code"], w["threshold"]) for w in warnings] == [
            (None, "unreachable_threshold", "hot")
        ]
        assert "33" in warnings[0]["message"]

    neither = {**capped, "thresholds": {"warm": 40, "hot": 60}}
    for warnings in await _preview_and_publish_warnings(client, site, neither):
        assert [w["threshold"] for w in warnings] == ["warm", "hot"]

    # A hard rule makes a lead hot whatever its score: only warm is unreachable by score.
    with_hard = {
        **neither,
        "hard": [{"id": "views", "steps": [{"event": "Product Viewed"}], "hold": "1d"}],
    }
    for warnings in await _preview_and_publish_warnings(client, site, with_hard):
        assert [w["threshold"] for w in warnings] == ["warm"]


async def test_nothing_is_said_of_thresholds_when_a_rule_is_unbounded(client, site):
    await send(client, site, *views("ann", 2, origin=_yesterday()))
    # Points for every view without a cap: any score can be reached.
    document = views_rule_set(points=1, warm=90, hot=99)
    for warnings in await _preview_and_publish_warnings(client, site, document):
        assert warnings == []


async def test_the_default_rule_set_has_no_warnings_on_a_site_that_sent_its_events(client, site):
    yesterday = _yesterday()
    await send(client, site, *views("ann", 1, origin=yesterday))
    await send(
        client,
        site,
        {
            "type": "page",
            "anonymousId": "bob",
            "messageId": "bob-page",
            "timestamp": yesterday.isoformat(),
        },
        *(_track("bob", name, yesterday, i) for i, name in enumerate(DEFAULT_EVENTS)),
    )
    for warnings in await _preview_and_publish_warnings(client, site, DEFAULT_RULE_SET):
        assert warnings == []


async def test_a_site_that_sent_nothing_recently_is_not_warned_of_every_event(client, site):
    for warnings in await _preview_and_publish_warnings(client, site, DEFAULT_RULE_SET):
        assert warnings == []


async def test_a_city_no_recent_lead_has_is_warned_with_the_closest_one(client, site):
    yesterday = _yesterday()
    await send(client, site, *views("ann", 2, origin=yesterday))
    await send(
        client,
        site,
        {
            "type": "identify",
            "anonymousId": "ann",
            "messageId": "ann-identify",
            "timestamp": (yesterday + timedelta(minutes=5)).isoformat(),
            "traits": {"city": "Kazan", "email": "ann@example.com"},
        },
    )
    city = {
        "id": "delivery-area",
        "type": "match",
        "field": "city",
        "weight": 20,
        "options": [
            {"values": ["kazan"], "coefficient": 1},  # options match case-insensitively
            {"values": ["Kazn", "Omsk"], "coefficient": 0.5},
        ],
    }
    for warnings in await _preview_and_publish_warnings(client, site, views_rule_set(fit=[city])):
        assert [(w["rule"], w["code"], w["suggestion"]) for w in warnings] == [
            ("delivery-area", "unknown_value", "Kazan"),
            ("delivery-area", "unknown_value", None),
        ]
        assert "city `Kazn`. Did you mean `Kazan`?" in warnings[0]["message"]
        assert "`Omsk`" in warnings[1]["message"]
