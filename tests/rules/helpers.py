"""Builders for rule-set tests: secret-key auth, product views, and small exact rule sets."""

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.tables import Lead
from tests.factories import T0, at, bearer


def views_rule_set(points: float = 10, warm: float = 30, hot: float = 60, **extra: Any) -> dict:
    """Only product views count, `points` each, no decay: scores are exact multiples."""
    return {
        "name": f"{points} per view",
        "behaviour": [
            {"id": "view", "event": "Product Viewed", "points": points},
            *extra.pop("behaviour", []),
        ],
        "thresholds": {"warm": warm, "hot": hot},
        **extra,
    }


def views(visitor: str, count: int, start: int = 0, origin: datetime = T0) -> list[dict]:
    """`count` product views, one a minute from `start` minutes after `origin`."""
    return [
        {
            "type": "track",
            "event": "Product Viewed",
            "anonymousId": visitor,
            "messageId": f"{visitor}-view-{origin.timestamp():.0f}-{i}",
            "timestamp": at(i, origin=origin),
            "properties": {"product_id": f"p{i}", "category": "fridges"},
        }
        for i in range(start, start + count)
    ]


async def publish(client: Any, secret_key: str, document: dict) -> dict:
    r = await client.put("/v1/rules", headers=bearer(secret_key), json=document)
    assert r.status_code == 200, r.text
    return r.json()


async def leads_of(session: AsyncSession, site_id: Any) -> list[Lead]:
    session.expire_all()
    rows = list(
        await session.scalars(select(Lead).where(Lead.site_id == site_id).order_by(Lead.id))
    )
    await session.commit()  # end the read: on SQLite every transaction holds the write lock
    return rows
