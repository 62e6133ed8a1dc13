"""A new shop: its site and keys (app.sites), and the built-in rule set as its version 1
(app.scoring). Composed here, above both, so that sites need not know of scoring."""

from sqlalchemy.ext.asyncio import AsyncSession

from app.scoring import scorer
from app.sites import service as sites_service


async def create_site(
    session: AsyncSession, name: str, allowed_origins: list[str] | None = None
) -> sites_service.CreatedSite:
    """Create a site with fresh keys and the default rule set; the caller shows the secret
    key once."""
    created = await sites_service.create_site(session, name, allowed_origins)
    await scorer.publish_default(session, created.site.id)
    return created
