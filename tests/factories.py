"""Plain factory functions for tests: sites, event times, events, and sending them."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
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


def bearer(key: str) -> dict[str, str]:
    """The header a shop's server sends its secret key in."""
    return {"Authorization": f"Bearer {key}"}


async def without_ladder(client: httpx.AsyncClient, site: sites_service.CreatedSite) -> None:
    """Turn the site's escalation ladder off. Events timed at `T0` make leads that turned hot
    weeks ago, so every step of the default ladder is due at once, and the timers loop (woken
    by the commit) hands such a lead over or marks it at risk while the test reads it."""
    r = await client.put("/v1/team/settings", headers=bearer(site.secret_key), json={"ladder": []})
    assert r.status_code == 200, r.text


# The tests' fixed clock origin for event times: in the past, so "now" is after every event.
T0 = datetime(2026, 10, 1, 10, 0, tzinfo=UTC)


def moment(minutes: float = 0, *, origin: datetime = T0, **delta: float) -> datetime:
    """`origin` plus a span: moment(5) is five minutes after T0, moment(days=7) a week."""
    return origin + timedelta(minutes=minutes, **delta)


def at(minutes: float = 0, *, origin: datetime = T0, **delta: float) -> str:
    """The same moment as an event's timestamp (ISO 8601)."""
    return moment(minutes, origin=origin, **delta).isoformat()


async def send(
    client: httpx.AsyncClient, site: sites_service.CreatedSite, *events: dict[str, Any]
) -> dict[str, Any]:
    """Sends the events in one batch with the site's write key, as a shop does; none may be
    rejected. Returns the answer's counts."""
    r = await client.post(
        "/v1/batch", auth=basic_auth(site.write_key), json={"batch": list(events)}
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["rejected"] == 0, body
    return body


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
