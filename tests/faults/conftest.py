"""Fault tests: commits that fail for real, databases that go away, slow clients."""

import pytest

from app.config import IngestionSettings, ScoringSettings, Settings
from tests.factories import create_site


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Background loops off: they would write on their own while a test breaks commits."""
    return Settings(
        database_url=database_url,
        create_demo_site=False,
        run_background=False,
        ingestion=IngestionSettings(write_key_cache_seconds=0),
        scoring=ScoringSettings(rule_set_cache_seconds=0),
    )


@pytest.fixture
async def site(session):
    return await create_site(session)
