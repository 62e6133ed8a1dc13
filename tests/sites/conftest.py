import pytest

from tests.factories import create_site


@pytest.fixture
async def site(session):
    return await create_site(session)
