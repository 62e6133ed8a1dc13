"""Previewing a draft rule set against the site's stored events, without publishing."""

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.scoring.models import RescoreJob
from tests.factories import T0, at, bearer, create_site, lead_by_anonymous_id, send
from tests.rules.helpers import leads_of, publish, views, views_rule_set

ACTIVE = views_rule_set(points=10, warm=30, hot=60)
DRAFT = views_rule_set(
    points=20,
    warm=35,
    hot=70,
    behaviour=[{"id": "unsubscribed", "event": "Unsubscribed", "points": -50}],
)
BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture
async def stored_leads(client, site) -> None:
    """Views per lead: a 1, b 2, c 4, d 7, e 4 then unsubscribed; and a crawler's page."""
    await publish(client, site.secret_key, ACTIVE)
    events = views("a", 1) + views("b", 2) + views("c", 4) + views("d", 7) + views("e", 4)
    events.append(
        {"type": "track", "event": "Unsubscribed", "anonymousId": "e", "timestamp": at(10)}
    )
    events.append(
        {
            "type": "page",
            "anonymousId": "crawler",
            "timestamp": at(1),
            "context": {"userAgent": BOT_UA},
        }
    )
    await send(client, site, *events)


async def preview(client, site, document, **params):
    params.setdefault("at", (T0 + timedelta(hours=1)).isoformat())
    return await client.post(
        "/v1/rules/preview", headers=bearer(site.secret_key), json=document, params=params
    )


async def ids_by_visitor(session, site):
    return {v: str((await lead_by_anonymous_id(session, site.site.id, v)).id) for v in "abcde"}


async def test_preview_counts_temperatures_under_the_draft_and_the_active_set(
    client, session, site, stored_leads
):
    r = await preview(client, site, DRAFT)

    assert r.status_code == 200, r.text
    body = r.json()
    assert body["active_version"] == 2
    assert datetime.fromisoformat(body["evaluated_at"]) == T0 + timedelta(hours=1)
    assert (body["leads"], body["events"]) == (5, 19)  # the crawler is neither
    assert body["active"] == {"cold": 2, "warm": 2, "hot": 1}
    assert body["draft"] == {"cold": 2, "warm": 1, "hot": 2}
    ids = await ids_by_visitor(session, site)
    assert body["changed"] == 3
    assert body["moves"] == {
        "cold_to_warm": 1, "cold_to_hot": 0, "warm_to_cold": 1,
        "warm_to_hot": 1, "hot_to_cold": 0, "hot_to_warm": 0,
    }  # fmt: skip
    assert body["changes_truncated"] is False
    # Who moves, the largest score move first, and the rules that make the difference.
    assert body["changes"] == [
        change(ids["c"], "warm", "hot", 40, 80, [view(40, 80)]),
        change(ids["b"], "cold", "warm", 20, 40, [view(20, 40)]),
        change(ids["e"], "warm", "cold", 40, 30, [unsubscribed(-50), view(40, 80)]),
    ]


def change(lead_id, old, new, score_active, score_draft, rules):
    return {
        "lead_id": lead_id, "label": lead_id[:8], "from": old, "to": new,
        "score_active": score_active, "score_draft": score_draft, "rules": rules,
    }  # fmt: skip


def view(active, draft):
    return {
        "rule_id": "view", "label": "view", "kind": "behaviour", "points_active": active,
        "points_draft": draft, "delta": draft - active, "hot_active": False, "hot_draft": False,
    }  # fmt: skip


def unsubscribed(points):
    return {**view(0, points), "rule_id": "unsubscribed", "label": "unsubscribed"}


async def test_a_changed_lead_is_named_by_its_name_email_or_city(client, site):
    """And a hard rule that holds under one set only is the first reason given."""
    await publish(client, site.secret_key, ACTIVE)
    people = {"n": {"name": "Olga", "email": "o@x.example"}, "m": {"email": "m@x.example"},
              "k": {"city": "Kazan"}}  # fmt: skip
    await send(
        client,
        site,
        *[
            {"type": "identify", "anonymousId": v, "timestamp": at(0), "traits": t}
            for v, t in people.items()
        ],  # fmt: skip
        *[e for v in people for e in views(v, 3)],
    )
    draft = views_rule_set(
        points=10, warm=30, hot=60, hard=[{"id": "viewer", "steps": [{"event": "Product Viewed"}],
                                            "hold": "1d", "label": "Looked at a product"}],
    )  # fmt: skip
    body = (await preview(client, site, draft)).json()
    assert body["changed"] == 3, body
    assert sorted(c["label"] for c in body["changes"]) == ["Kazan", "Olga", "m@x.example"]
    assert body["moves"]["warm_to_hot"] == 3
    assert body["changes"][0]["rules"][0] == {
        "rule_id": "viewer", "label": "Looked at a product", "kind": "hard", "points_active": 0,
        "points_draft": 0, "delta": 0, "hot_active": False, "hot_draft": True,
    }  # fmt: skip


@pytest.mark.parametrize("limit", [0, 1])
async def test_the_list_of_changed_leads_is_bounded(client, site, stored_leads, limit):
    body = (await preview(client, site, DRAFT, limit=limit)).json()
    assert body["changed"] == 3
    assert len(body["changes"]) == limit
    assert body["changes_truncated"] is True
    assert [c["score_draft"] for c in body["changes"]] == [80][:limit]  # the largest move


async def test_previewing_the_active_set_changes_no_temperature(client, site, stored_leads):
    body = (await preview(client, site, ACTIVE)).json()
    assert body["active"] == body["draft"] == {"cold": 2, "warm": 2, "hot": 1}
    assert (body["changed"], body["changes"]) == (0, [])


async def test_preview_changes_no_stored_lead_and_publishes_nothing(
    client, session, site, stored_leads
):
    def snapshot(leads):
        return [
            (lead.id, lead.score, lead.temperature, lead.score_state, lead.rule_set_version)
            + (lead.scored_at, lead.updated_at)
            for lead in leads
        ]

    before = snapshot(await leads_of(session, site.site.id))
    jobs_before = await session.scalar(select(func.count()).select_from(RescoreJob))
    await session.commit()

    assert (await preview(client, site, DRAFT)).status_code == 200

    assert snapshot(await leads_of(session, site.site.id)) == before
    assert await session.scalar(select(func.count()).select_from(RescoreJob)) == jobs_before
    await session.commit()
    active = (await client.get("/v1/rules", headers=bearer(site.secret_key))).json()
    assert active["version"] == 2


async def test_an_invalid_draft_is_refused_like_a_publish(client, site, stored_leads):
    draft = views_rule_set()
    draft["behaviour"][0]["frequency"] = "sometimes"
    r = await preview(client, site, draft)
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "invalid_rule_set"
    assert body["details"][0]["rule"] == "view"
    assert body["details"][0]["field"] == "behaviour.0.frequency"


async def test_a_site_without_leads_previews_empty(client, session):
    empty = await create_site(session, "Empty shop")
    body = (await preview(client, empty, DRAFT)).json()
    assert body["active_version"] == 1
    assert (body["leads"], body["events"], body["changed"]) == (0, 0, 0)
    assert body["draft"] == {"cold": 0, "warm": 0, "hot": 0}


async def test_leads_not_yet_rescored_are_replayed_under_the_active_set(
    client, session, settings, site, stored_leads
):
    settings.scoring.rescore_sync_max_leads = 0  # v3's job waits: every lead is still at v2
    await publish(client, site.secret_key, views_rule_set(points=5, warm=10, hot=20))
    assert {lead.rule_set_version for lead in await leads_of(session, site.site.id)} == {2}

    body = (await preview(client, site, DRAFT)).json()

    assert body["active_version"] == 3
    assert body["active"] == {"cold": 1, "warm": 1, "hot": 3}  # 5, 10, 20, 35, 20 points
    assert body["draft"] == {"cold": 2, "warm": 1, "hot": 2}
