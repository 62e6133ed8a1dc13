"""Events of hot, warm and cold visitors, and reading leads the way a shop's server does
(secret key)."""

from typing import Any

from tests.factories import at, bearer, lead_by_anonymous_id


def page(visitor: str, minutes: float, url: str = "https://shop.example/", **fields: Any) -> dict:
    return {
        "type": "page",
        "anonymousId": visitor,
        "timestamp": at(minutes),
        "properties": {"url": url},
        **fields,
    }


def event(visitor: str, name: str, minutes: float, /, **properties: Any) -> dict:
    return {
        "type": "track",
        "event": name,
        "anonymousId": visitor,
        "timestamp": at(minutes),
        "properties": properties,
    }


def identify(visitor: str, minutes: float, **traits: Any) -> dict:
    return {"type": "identify", "anonymousId": visitor, "timestamp": at(minutes), "traits": traits}


def hot(visitor: str, minutes: float = 0) -> list[dict]:
    """A contact request: hot at once."""
    return [event(visitor, "Contact Requested", minutes, phone="+7 900 000 00 00")]


def warm(visitor: str, minutes: float = 0, category: str = "fridges") -> list[dict]:
    """Product views over two visits and a long read: warm."""
    views = [
        event(visitor, "Product Viewed", minutes + m, product_id=f"p{m}", category=category)
        for m in (0, 2, 4, 120, 122)
    ]
    engaged = event(visitor, "Page Engaged", minutes + 123, engaged_seconds=540)
    return [*views, engaged]


def cold(visitor: str, minutes: float = 0) -> list[dict]:
    return [page(visitor, minutes)]


async def list_leads(client: Any, site: Any, **params: Any) -> dict:
    r = await client.get("/v1/leads", headers=bearer(site.secret_key), params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def lead_ids(client: Any, site: Any, **params: Any) -> list[str]:
    return [lead["id"] for lead in (await list_leads(client, site, **params))["data"]]


async def id_of(session: Any, site: Any, visitor: str) -> str:
    return str((await lead_by_anonymous_id(session, site.site.id, visitor)).id)
