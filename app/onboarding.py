"""A new shop: its site and keys (app.sites), the built-in rule set as its version 1
(app.scoring), and the starter audiences (app.audiences). Composed here, above them, so that
sites need not know of scoring or audiences."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.audiences import starters
from app.db import utcnow
from app.scoring import scorer
from app.sites import service as sites_service


async def create_site(
    session: AsyncSession, name: str, allowed_origins: list[str] | None = None
) -> sites_service.CreatedSite:
    """Create a site with fresh keys, the default rule set and the starter audiences; the
    caller shows the secret key once."""
    created = await sites_service.create_site(session, name, allowed_origins)
    await scorer.publish_default(session, created.site.id)
    await starters.add_starters(session, created.site.id, utcnow())
    return created
