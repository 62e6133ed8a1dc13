"""What a group of ingested events means for webhook consumers, decided inside ingestion's
transaction (an `after_group` consumer): temperature changes, hot leads (with `contact_by`
and the first-contact timers), identified leads, and cart-abandonment timers."""

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from app.config import WebhookSettings
from app.db import utcnow
from app.domain import lead_writes
from app.domain.lead_rows import LeadRow
from app.ingestion.store import LeadChange
from app.scoring import engine as scoring_engine
from app.scoring import service as scoring_service
from app.webhooks import outbox, timers

TOP_RULES = 5
LEAD_FIELDS = (
    "score",
    "temperature",
    "status",
    "identified",
    "became_hot_at",
    "contact_by",
    "first_contacted_at",
    "contacts",
    "interests",
    "cart",
    "last_url",
    "city",
    "country",
    "user_id",
)


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def lead_data(
    profile: LeadRow,
    breakdown: list[dict[str, Any]],
    max_bytes: int,
    **extra: Any,
) -> dict[str, Any]:
    """The lead as consumers see it, bounded to `max_bytes` (cart and interests cut first)."""
    data: dict[str, Any] = {"lead_id": str(profile["id"]), "site_id": str(profile["site_id"])}
    data.update({key: _iso(profile.get(key)) for key in LEAD_FIELDS})
    data["top_rules"] = breakdown
    data.update(extra)
    if len(orjson.dumps(data)) > max_bytes:
        interests = sorted((data["interests"] or {}).items(), key=lambda kv: -kv[1])[:20]
        data["interests"] = dict(interests)
        cart = dict(data["cart"] or {})
        cart["items"] = dict(list((cart.get("items") or {}).items())[:20])
        data["cart"] = cart
        data["truncated"] = True
        if len(orjson.dumps(data)) > max_bytes:
            data["cart"] = {k: v for k, v in cart.items() if k != "items"}
            data["products_viewed"] = None
            data["contacts"] = dict(list((data["contacts"] or {}).items())[:10])
    return data


async def top_rules(
    conn: AsyncConnection,
    rule_sets: scoring_service.RuleSetCache | None,
    profiles: Iterable[LeadRow],
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """The rules that contribute most to each lead's score (its breakdown, top few)."""
    profiles = list(profiles)
    if rule_sets is None or not profiles:
        return {}
    compiled = await rule_sets.get_many(conn, {p["site_id"] for p in profiles})
    out: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for p in profiles:
        state = p.get("score_state")
        if not state or not state.get("at"):
            out[p["id"]] = []
            continue
        at = datetime.fromtimestamp(state["at"], UTC)
        facts = scoring_service.facts_from_profile(p)
        result = scoring_engine.evaluate(compiled[p["site_id"]], state, facts, at)
        items = sorted(result.breakdown, key=lambda b: (b.kind != "hard", -b.points))
        out[p["id"]] = [
            {"rule_id": b.rule_id, "label": b.label, "kind": b.kind, "points": b.points}
            for b in items[:TOP_RULES]
        ]
    return out


class WebhookConsumer:
    """The `after_group` consumer: writes outbox messages and timers in the group's
    transaction, and sets `leads.contact_by` for leads that turned hot."""

    def __init__(
        self,
        settings: WebhookSettings,
        rule_sets: scoring_service.RuleSetCache | None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._settings = settings
        self._rule_sets = rule_sets
        self._now = now

    async def __call__(self, conn: AsyncConnection, changes: list[LeadChange]) -> None:
        now = self._now() if self._now is not None else utcnow()
        window = timedelta(minutes=self._settings.first_contact_window_minutes)
        turned_hot: list[LeadRow] = []
        notices: list[tuple[str, LeadChange]] = []
        for change in changes:
            p = change.profile
            before, temperature = change.previous_temperature, p["temperature"]
            hot_at = p["became_hot_at"]
            if temperature == "hot" and before != "hot" and hot_at is not None:
                p["contact_by"] = hot_at + window
                turned_hot.append(p)
                notices.append((outbox.LEAD_HOT, change))
            if before != temperature and not (before is None and temperature == "cold"):
                notices.append((outbox.LEAD_TEMPERATURE_CHANGED, change))
            if not change.previously_identified and p.get("identified"):
                notices.append((outbox.LEAD_IDENTIFIED, change))
        if turned_hot:
            await lead_writes.set_contact_by(conn, turned_hot)
            await timers.schedule_first_contact(
                conn, [p for p in turned_hot if p.get("first_contacted_at") is None], self._settings
            )
        await timers.track_carts(conn, changes, self._settings, now)
        if notices:
            await outbox.enqueue(conn, await self._messages(conn, notices), now)

    async def _messages(
        self, conn: AsyncConnection, notices: Sequence[tuple[str, LeadChange]]
    ) -> list[outbox.NewMessage]:
        profiles = {c.profile["id"]: c.profile for _, c in notices}
        breakdowns = await top_rules(conn, self._rule_sets, profiles.values())
        messages = []
        for event_type, change in notices:
            p = change.profile
            data = lead_data(
                p,
                breakdowns.get(p["id"], []),
                self._settings.max_payload_bytes,
                previous_temperature=change.previous_temperature,
            )
            messages.append(outbox.NewMessage(p["site_id"], event_type, data, lead_id=p["id"]))
        return messages
