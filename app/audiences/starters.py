"""The audiences every new shop starts with: the nurturing groups the domain names (most
visitors are not ready to buy; the interested ones are nurtured by their interests)."""

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.audiences.endpoints import add_audience
from app.audiences.filters import AudienceFilters
from app.audiences.schemas import AudienceIn

STARTER_AUDIENCES: list[AudienceIn] = [
    AudienceIn(
        name="Interested in a category, not ready",
        filters=AudienceFilters(temperature=["warm"], any_category_min_views=3, orders_max=0),
    ),
    AudienceIn(
        name="Abandoned cart this week",
        filters=AudienceFilters(
            cart="has_items", cart_updated_within_hours=7 * 24, last_seen_not_within_hours=1
        ),
    ),
    AudienceIn(
        name="Ordered once, came back",
        filters=AudienceFilters(orders_min=1, orders_max=1, came_back_after_order=True),
    ),
]


async def add_starters(session: AsyncSession, site_id: uuid.UUID, now: datetime) -> None:
    """A new site's starter audiences; it has no leads yet, so they are ready at once."""
    for body in STARTER_AUDIENCES:
        audience = await add_audience(session, site_id, body, now)
        audience.state = "ready"
    await session.flush()
