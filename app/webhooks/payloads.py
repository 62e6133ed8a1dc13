"""The lead as webhook consumers see it: its fields, bounded in size, and the rules that
contribute most to its score (for the consumer of ingestion's changes and for timers)."""

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.lead_rows import LeadRow
from app.scoring import engine as scoring_engine
from app.scoring import scorer
from app.team.assignment import Owner

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
    owner: Owner | None,
    **extra: Any,
) -> dict[str, Any]:
    """The lead as consumers see it, bounded to `max_bytes` (cart and interests cut first)."""
    data: dict[str, Any] = {"lead_id": str(profile["id"]), "site_id": str(profile["site_id"])}
    data.update({key: _iso(profile.get(key)) for key in LEAD_FIELDS})
    data["owner"] = owner.as_json() if owner is not None else None
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
    rule_sets: scorer.RuleSetCache | None,
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
        facts = scorer.facts_from_profile(p)
        result = scoring_engine.evaluate(compiled[p["site_id"]], state, facts, at)
        rules = (b for b in result.breakdown if b.kind != "limit")  # the score's bound: no rule
        items = sorted(rules, key=lambda b: (b.kind != "hard", -b.points))
        out[p["id"]] = [
            {"rule_id": b.rule_id, "label": b.label, "kind": b.kind, "points": b.points}
            for b in items[:TOP_RULES]
        ]
    return out
