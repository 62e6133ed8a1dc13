"""Rule-set tests drive the background loops themselves (with a controllable clock), so the
app under test runs none of its own."""

import pytest

from app.config import Settings
from tests.conftest import make_settings


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, run_background=False)
