"""End to end over the HTTP batch route, on both databases: whatever a batch holds, the answer
is never a 5xx; a 200 accounts for every event (accepted + duplicates + rejected; bots are
among the accepted), and what it accepted is in the database."""

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.domain.tables import Event
from tests.factories import basic_auth, create_site
from tests.property.strategies import events, objects, timestamps

# NaN is not JSON (json.dumps would write it; the service refuses the body): validate_event's
# own property covers NaN floats (test_validation.py). Lone surrogates go as \udXXX escapes.
BATCHES = st.lists(
    events(message_ids=st.sampled_from(["m1", "m2", "m3"]) | st.none(), finite=True),
    max_size=8,
)
CRAWLER = {"userAgent": "Googlebot/2.1 (+http://www.google.com/bot.html)"}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    batch=BATCHES,
    sent_at=timestamps(),
    shared_context=st.one_of(st.none(), st.just(CRAWLER), objects(finite=True)),
)
async def test_a_batch_is_answered_for_every_event(
    client, session, batch: list[Any], sent_at: Any, shared_context: Any
) -> None:
    site = await create_site(session)  # a fresh site: earlier examples' events are not ours
    body: dict[str, Any] = {"batch": batch, "sentAt": sent_at}
    if shared_context is not None:
        body["context"] = shared_context
    r = await client.post(
        "/v1/batch",
        auth=basic_auth(site.write_key),
        content=json.dumps(body, allow_nan=False).encode(),
        headers={"content-type": "application/json"},
    )
    assert r.status_code < 500, r.text
    if r.status_code != 200:  # the request as a whole (e.g. too large): nothing stored
        assert r.json()["code"] in {"payload_too_large", "invalid_json"}, r.text
        stored = 0
    else:
        answer = r.json()
        assert answer["accepted"] + answer["duplicates"] + answer["rejected"] == len(batch)
        assert answer["bots"] <= answer["accepted"]
        assert [e["index"] for e in answer["errors"]] == sorted(
            e["index"] for e in answer["errors"]
        )
        assert len(answer["errors"]) == answer["rejected"]
        stored = answer["accepted"]
    count = select(func.count()).select_from(Event).where(Event.site_id == site.site.id)
    assert await session.scalar(count) == stored
