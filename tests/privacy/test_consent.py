"""Consent: an event whose context says the visitor refused tracking (Segment's
`context.consent.categoryPreferences`, RudderStack's `context.consentManagement`) is answered
but not stored, and counted."""

from typing import Any

import pytest
from sqlalchemy import func, select

from app.config import PrivacySettings, Settings
from app.domain.tables import Event, LeadIdentity
from app.ingestion.parsing import consent_refused
from tests.factories import send, track

SEGMENT_REFUSED = {"consent": {"categoryPreferences": {"Analytics": False, "Advertising": False}}}
SEGMENT_PARTIAL = {"consent": {"categoryPreferences": {"Analytics": True, "Advertising": False}}}
RUDDER_REFUSED = {
    "consentManagement": {"allowedConsentIds": [], "deniedConsentIds": ["C0002", "C0004"]}
}
RUDDER_PARTIAL = {
    "consentManagement": {"allowedConsentIds": ["C0002"], "deniedConsentIds": ["C0004"]}
}


@pytest.mark.parametrize(
    ("context", "categories", "refused"),
    [
        ({}, (), False),
        ({"consent": {}}, (), False),
        ({"consent": {"categoryPreferences": {}}}, (), False),
        (SEGMENT_REFUSED, (), True),
        (SEGMENT_PARTIAL, (), False),
        (SEGMENT_PARTIAL, ("Advertising",), True),
        (SEGMENT_PARTIAL, ("Analytics",), False),
        (RUDDER_REFUSED, (), True),
        (RUDDER_PARTIAL, (), False),
        (RUDDER_PARTIAL, ("C0004",), True),
        (RUDDER_PARTIAL, ("C0002",), False),
        ({"consent": "no", "consentManagement": ["x"]}, (), False),  # not the shapes: kept
    ],
)
def test_the_shapes_of_a_refusal(context, categories, refused):
    assert consent_refused(context, frozenset(categories)) is refused


async def count(session: Any, model: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_refused_event_is_answered_not_stored_and_counted(app, client, session, site):
    answer = await send(
        client,
        site,
        track("refuser", "Product Viewed", context=SEGMENT_REFUSED),
        track("refuser-2", "Product Viewed", context=RUDDER_REFUSED),
        track("consenter", "Product Viewed", context=SEGMENT_PARTIAL),
        track("silent", "Product Viewed"),
    )
    assert answer["accepted"] == 4  # acknowledged: the client must not retry them
    assert await count(session, Event) == 2
    values = set(await session.scalars(select(LeadIdentity.value)))
    assert values == {"consenter", "silent"}
    assert app.state.ingest_pipeline.stats["consent_refused_events"] == 2


async def test_the_batch_context_refuses_for_every_event(app, client, session, site):
    r = await client.post(
        "/v1/batch",
        auth=(site.write_key, ""),
        json={"batch": [track("a", "Product Viewed")], "context": RUDDER_REFUSED},
    )
    assert r.status_code == 200, r.text
    assert await count(session, Event) == 0


class TestConfiguredCategories:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        privacy = PrivacySettings(consent_categories=["Analytics"])
        return settings.model_copy(update={"privacy": privacy})

    async def test_refusing_a_needed_category_is_a_refusal(self, app, client, session, site):
        needed_refused = {"consent": {"categoryPreferences": {"Analytics": False, "Ads": True}}}
        other_refused = {"consent": {"categoryPreferences": {"Analytics": True, "Ads": False}}}
        await send(
            client,
            site,
            track("a", "Product Viewed", context=needed_refused),
            track("b", "Product Viewed", context=other_refused),
        )
        assert set(await session.scalars(select(Event.anonymous_id))) == {"b"}
        assert app.state.ingest_pipeline.stats["consent_refused_events"] == 1
