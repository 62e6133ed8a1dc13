"""Plain factory functions for tests."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import onboarding
from app.domain.tables import Event, Lead, LeadIdentity
from app.sites import service as sites_service


async def create_site(
    session: AsyncSession, name: str = "Fridge shop", origins: list[str] | None = None
) -> sites_service.CreatedSite:
    created = await onboarding.create_site(session, name, origins)
    await session.commit()
    session.expunge(created.site)  # tests expire the session to see the service's writes
    return created


def basic_auth(write_key: str) -> tuple[str, str]:
    return (write_key, "")


async def stored_events(session: AsyncSession, site_id: object) -> list[Event]:
    result = await session.scalars(select(Event).where(Event.site_id == site_id).order_by(Event.id))
    return list(result)


async def lead_by_anonymous_id(session: AsyncSession, site_id: object, anonymous_id: str) -> Lead:
    session.expire_all()
    lead = await session.scalar(
        select(Lead)
        .join(LeadIdentity, LeadIdentity.lead_id == Lead.id)
        .where(
            LeadIdentity.site_id == site_id,
            LeadIdentity.kind == "anonymous",
            LeadIdentity.value == anonymous_id,
        )
    )
    assert lead is not None, f"no lead for anonymousId {anonymous_id}"
    return lead


def track(anonymous_id: str, event: str, message_id: str | None = None, **fields: object) -> dict:
    body: dict = {"type": "track", "event": event, "anonymousId": anonymous_id, **fields}
    if message_id:
        body["messageId"] = message_id
    return body
