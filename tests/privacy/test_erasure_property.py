"""Whatever the visitors did (several devices, logins that merge leads), erasing one person
removes exactly that person's events: every event of everyone else stays."""

from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from sqlalchemy import select

from app.config import Settings
from app.domain.tables import Event
from tests.factories import bearer, create_site, send

# An event: which device (anonymousId) and, once logged in, which account (userId).
VISITS = st.lists(
    st.tuples(st.integers(0, 3), st.none() | st.integers(0, 2)), min_size=1, max_size=8
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"run_background": False})


def people(visits: list[tuple[int, int | None]]) -> dict[str, str]:
    """Each id's person (a representative id): an event with both ids makes them one."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    for device, account in visits:
        find(f"a{device}")
        if account is not None:
            parent[find(f"a{device}")] = find(f"u{account}")
    return {x: find(x) for x in parent}


@examples(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(visits=VISITS, pick=st.integers(0, 100))
async def test_erasing_one_person_never_removes_anothers_events(
    client, session, visits: list[tuple[int, int | None]], pick: int
) -> None:
    site = await create_site(session)  # a fresh site: earlier examples' events are not ours
    events: list[dict[str, Any]] = []
    for n, (device, account) in enumerate(visits):
        event = {"type": "track", "event": "Product Viewed", "anonymousId": f"a{device}"}
        if account is not None:
            event["userId"] = f"u{account}"
        events.append({**event, "messageId": f"m{n}"})
    for event in events:  # one request each: merges happen across groups too
        await send(client, site, event)
    person_of = people(visits)
    ids = sorted(person_of)
    target = ids[pick % len(ids)]
    field = "anonymousId" if target.startswith("a") else "userId"

    r = await client.request(
        "DELETE", "/v1/people", headers=bearer(site.secret_key), json={field: target}
    )

    assert r.status_code == 200, r.text
    erased = person_of[target]
    expected = {e["messageId"] for e in events if person_of[e["anonymousId"]] != erased}
    left = set(await session.scalars(select(Event.message_id).where(Event.site_id == site.site.id)))
    assert left == expected
    assert r.json()["erased"]["events"] == len(events) - len(expected)
