"""Assignment rules the admin sets: a hot lead that matches every condition a rule gives (its
city, its top category of interest, its cart's value, its source) goes to one of the rule's
people, by the same round-robin as the site's (app.team.assignment); a rule whose people are
all off duty, out of hours or at their limit passes the lead on to the next rule, and the
site-wide round-robin is the fallback.

A lead's source is `traits.source` or `traits.utm_source` (what `identify` sent), else the
`utm_source` of the page it is on."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.domain.lead_rows import LeadRow
from app.errors import NotFound, Unprocessable
from app.params import Text
from app.team.models import AssignmentRule, User

_rules = cast(Table, AssignmentRule.__table__)
MAX_RULES = 100

Values = list[Text]


class Conditions(BaseModel):
    """What a lead must match (every condition given; none given: every lead)."""

    model_config = ConfigDict(extra="forbid")

    cities: Values | None = Field(
        None, min_length=1, max_length=100, description="the lead's city is one of these (any case)"
    )
    categories: Values | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="the lead's top category of interest (most viewed) is one of these",
    )
    sources: Values | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="the lead's source (traits.source or traits.utm_source, else the page's"
        " utm_source) is one of these (any case)",
    )
    cart_min: float | None = Field(None, ge=0, description="the cart's value is at least this")
    cart_max: float | None = Field(None, ge=0, description="the cart's value is below this")

    @model_validator(mode="after")
    def _range(self) -> "Conditions":
        low, high = self.cart_min, self.cart_max
        if low is not None and high is not None and high <= low:
            raise ValueError("cart_max must be above cart_min")
        return self


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=200)
    position: int = Field(0, ge=0, le=10_000, description="rules are tried lowest first")
    enabled: bool = True
    conditions: Conditions = Field(default_factory=Conditions)
    user_ids: list[uuid.UUID] = Field(
        min_length=1, max_length=100, description="active people of the site, round-robin"
    )


class RuleOut(RuleIn):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime
    updated_at: datetime


def _folded(values: Sequence[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(v.casefold() for v in values)


def lead_source(p: LeadRow) -> str | None:
    traits = p.get("traits") or {}
    for key in ("source", "utm_source"):
        if isinstance(traits.get(key), str) and traits[key]:
            return str(traits[key])
    if p.get("last_url"):
        found = parse_qs(urlsplit(p["last_url"] or "").query).get("utm_source")
        if found:
            return found[0]
    return None


def top_category(p: LeadRow) -> str | None:
    interests = p.get("interests") or {}
    ranked = sorted(interests.items(), key=lambda kv: (-kv[1], kv[0]))
    return ranked[0][0] if ranked else None


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule ready to match leads (its values folded once)."""

    id: uuid.UUID
    user_ids: tuple[uuid.UUID, ...]
    cities: frozenset[str] | None
    categories: frozenset[str] | None
    sources: frozenset[str] | None
    cart_min: float | None
    cart_max: float | None

    @classmethod
    def of(cls, rule_id: uuid.UUID, conditions: dict[str, Any], user_ids: list[str]) -> "Rule":
        c = Conditions.model_validate(conditions)
        return cls(
            rule_id,
            tuple(uuid.UUID(u) for u in user_ids),
            _folded(c.cities),
            frozenset(c.categories) if c.categories is not None else None,
            _folded(c.sources),
            c.cart_min,
            c.cart_max,
        )

    def matches(self, p: LeadRow) -> bool:
        if self.cities is not None and (p.get("city") or "").casefold() not in self.cities:
            return False
        if self.categories is not None and top_category(p) not in self.categories:
            return False
        if self.sources is not None and (lead_source(p) or "").casefold() not in self.sources:
            return False
        value = float((p.get("cart") or {}).get("value") or 0)
        if self.cart_min is not None and value < self.cart_min:
            return False
        return not (self.cart_max is not None and value >= self.cart_max)


async def enabled_rules(conn: AsyncConnection, site_id: uuid.UUID) -> list[Rule]:
    rows = await conn.execute(
        select(_rules.c.id, _rules.c.conditions, _rules.c.user_ids)
        .where(_rules.c.site_id == site_id, _rules.c.enabled)
        .order_by(_rules.c.position, _rules.c.created_at, _rules.c.id)
    )
    return [Rule.of(r.id, r.conditions, r.user_ids) for r in rows]


# --- the admin API's service ------------------------------------------------------------------


async def list_rules(session: AsyncSession, site_id: uuid.UUID) -> list[AssignmentRule]:
    rows = await session.scalars(
        select(AssignmentRule)
        .where(AssignmentRule.site_id == site_id)
        .order_by(AssignmentRule.position, AssignmentRule.created_at, AssignmentRule.id)
    )
    return list(rows)


async def get_rule(session: AsyncSession, site_id: uuid.UUID, rule_id: uuid.UUID) -> AssignmentRule:
    rule = await session.get(AssignmentRule, rule_id)
    if rule is None or rule.site_id != site_id:
        raise NotFound(f"No assignment rule {rule_id}.")
    return rule


async def _check_people(session: AsyncSession, site_id: uuid.UUID, ids: list[uuid.UUID]) -> None:
    found = set(
        await session.scalars(
            select(User.id).where(User.site_id == site_id, User.active, User.id.in_(ids))
        )
    )
    missing = [str(i) for i in ids if i not in found]
    if missing:
        message = f"Not active people of this site: {', '.join(missing)}."
        raise Unprocessable(
            message,
            details=[{"loc": ["body", "user_ids"], "message": message, "type": "value_error"}],
        )


def _values(body: RuleIn) -> dict[str, Any]:
    return {
        "name": body.name,
        "position": body.position,
        "enabled": body.enabled,
        "conditions": body.conditions.model_dump(mode="json", exclude_none=True),
        "user_ids": [str(u) for u in dict.fromkeys(body.user_ids)],
    }


async def create_rule(
    session: AsyncSession, site_id: uuid.UUID, body: RuleIn, now: datetime
) -> AssignmentRule:
    await _check_people(session, site_id, body.user_ids)
    count = len(await list_rules(session, site_id))
    if count >= MAX_RULES:
        raise Unprocessable(f"A site has at most {MAX_RULES} assignment rules.")
    rule = AssignmentRule(site_id=site_id, created_at=now, updated_at=now, **_values(body))
    session.add(rule)
    await session.flush()
    return rule


async def replace_rule(
    session: AsyncSession, rule: AssignmentRule, body: RuleIn, now: datetime
) -> AssignmentRule:
    await _check_people(session, rule.site_id, body.user_ids)
    for key, value in _values(body).items():
        setattr(rule, key, value)
    rule.updated_at = now
    await session.flush()
    return rule
