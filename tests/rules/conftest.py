"""Rule-set tests drive the background loops themselves (with a controllable clock), so the
app under test runs none of its own."""

import pytest

from app.config import IngestionSettings, ScoringSettings, Settings


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        create_demo_site=False,
        run_background=False,
        ingestion=IngestionSettings(write_key_cache_seconds=0),
        scoring=ScoringSettings(rule_set_cache_seconds=0),
    )
