"""The funnel of the leads first seen in a period: exact counts and conversion rates."""

from datetime import timedelta

import pytest

from app.leads.endpoints import current_time
from tests.factories import T0, bearer, send
from tests.leads.helpers import cold, hot, id_of, identify, warm


async def set_status(client, site, lead_id, status, reason=None):
    body = {"status": status, **({"lost_reason": reason} if reason else {})}
    r = await client.patch(f"/v1/leads/{lead_id}", headers=bearer(site.secret_key), json=body)
    assert r.status_code == 200, r.text


async def funnel(client, site, **params):
    r = await client.get("/v1/stats/funnel", headers=bearer(site.secret_key), params=params)
    assert r.status_code == 200, r.text
    return r.json()


WINDOW = {"from": (T0 - timedelta(hours=1)).isoformat(), "to": (T0 + timedelta(days=1)).isoformat()}


@pytest.fixture
async def crafted(client, session, site):
    """12 visitors first seen on T0's day, and one the day before (outside the window):
    3 anonymous browsers, 9 left a contact; 2 of those are spam."""
    events = [*cold("anon1"), *cold("anon2"), *warm("anon3")]
    statuses = {
        "new1": None,
        "contacted1": "contacted",
        "contacted2": "contacted",
        "qualified1": "qualified",
        "won1": "won",
        "lost-budget": ("lost", "nothing_in_budget"),
        "lost-slow": ("lost", "waited_too_long"),
        "spam1": ("lost", "spam"),
        "spam2": ("lost", "spam"),
    }
    for i, visitor in enumerate(statuses):
        events += hot(visitor, i) if visitor == "won1" else cold(visitor, i)
        events.append(identify(visitor, i + 0.5, email=f"{visitor}@example.com"))
    events += cold("yesterday", -24 * 60)
    await send(client, site, *events)
    for visitor, status in statuses.items():
        lead_id = await id_of(session, site, visitor)
        if isinstance(status, tuple):
            await set_status(client, site, lead_id, *status)
        elif status == "won":
            for step in ("contacted", "qualified", "won"):
                await set_status(client, site, lead_id, step)
        elif status:
            await set_status(client, site, lead_id, status)
    # One lost lead had been contacted first (recorded through the contacts API).
    r = await client.post(
        f"/v1/leads/{await id_of(session, site, 'lost-slow')}/contacts",
        headers=bearer(site.secret_key),
        json={"channel": "phone"},
    )
    assert r.status_code == 201, r.text


async def test_the_funnel_counts_each_step_and_the_conversion_between_them(client, site, crafted):
    stats = await funnel(client, site, **WINDOW)
    assert stats["leads"] == 10  # 12 first seen in the window, less 2 spam
    assert stats["spam"] == 2
    assert stats["by_status"] == {"new": 4, "contacted": 2, "qualified": 1, "won": 1, "lost": 2}
    assert stats["by_temperature"] == {"cold": 8, "warm": 1, "hot": 1}
    assert stats["funnel"] == [
        {"step": "first_touch", "count": 10, "conversion_rate": None},
        {"step": "lead", "count": 7, "conversion_rate": 0.7},
        # contacted1, contacted2, qualified1, won1, and lost-slow (contacted before it was lost)
        {"step": "contacted", "count": 5, "conversion_rate": round(5 / 7, 4)},
        {"step": "qualified", "count": 2, "conversion_rate": 0.4},
        {"step": "won", "count": 1, "conversion_rate": 0.5},
    ]
    assert stats["overall_conversion_rate"] == 0.1
    assert stats["lost_by_reason"] == {
        "not_our_profile": 0,
        "bought_elsewhere": 0,
        "bought_from_competitor": 0,
        "waited_too_long": 1,
        "nothing_in_budget": 1,
        "other": 0,
    }
    assert any("spam" in note.lower() for note in stats["notes"])


async def test_the_window_is_by_first_seen(client, site, crafted):
    day_before = {
        "from": (T0 - timedelta(days=2)).isoformat(),
        "to": (T0 - timedelta(hours=1)).isoformat(),
    }
    stats = await funnel(client, site, **day_before)
    assert (stats["leads"], stats["spam"]) == (1, 0)
    assert stats["funnel"][1] == {"step": "lead", "count": 0, "conversion_rate": 0.0}
    assert stats["funnel"][2] == {"step": "contacted", "count": 0, "conversion_rate": None}


async def test_the_default_window_is_the_last_30_days(client, site, crafted, app):
    app.dependency_overrides[current_time] = lambda: T0 + timedelta(days=29)
    try:
        stats = await funnel(client, site)
        assert stats["leads"] == 11  # yesterday's lead too
        assert stats["to"].startswith((T0 + timedelta(days=29)).date().isoformat())
        app.dependency_overrides[current_time] = lambda: T0 + timedelta(days=31)
        assert (await funnel(client, site))["leads"] == 0
    finally:
        app.dependency_overrides.pop(current_time, None)


async def test_an_empty_period_has_no_rates(client, site):
    stats = await funnel(client, site, **WINDOW)
    assert stats["leads"] == 0
    assert [step["conversion_rate"] for step in stats["funnel"]] == [None] * 5
    assert stats["overall_conversion_rate"] is None


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-10-02T00:00:00Z", "to": "2026-10-01T00:00:00Z"},
        {"from": "last week"},
        {"to": "soon"},
    ],
)
async def test_a_bad_window_is_422(client, site, params):
    r = await client.get("/v1/stats/funnel", headers=bearer(site.secret_key), params=params)
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"
