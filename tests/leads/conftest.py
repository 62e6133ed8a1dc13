import pytest

from tests.factories import create_site


@pytest.fixture
async def site(session):
    return await create_site(session)


@pytest.fixture
async def other_site(session):
    return await create_site(session, name="Another shop")
