"""The sales funnel over the leads first seen in a period: temperatures, statuses, the steps
first touch -> lead -> contacted -> qualified -> won with conversion between them, and why
leads were lost. Spam is not a lead: it is counted apart and left out of everything else."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain.tables import Lead
from app.leads.schemas import LOST_REASONS, STATUSES, TEMPERATURES

SPAM_NOTE = (
    "Spam (leads lost with reason 'spam') is not a lead: it is counted only in 'spam' and left "
    "out of every other count and of the conversion rates' denominators."
)
STEPS_NOTE = (
    "Each step counts the leads that reached it or a later one: lead = a contact is known, "
    "contacted = status contacted or later, or a first contact was recorded (lost leads "
    "included), qualified = qualified or won. The steps follow the order a lead's status "
    "moves in (new, contacted, qualified, won)."
)


def _rate(count: int, previous: int) -> float | None:
    return round(count / previous, 4) if previous else None


async def funnel(
    session: AsyncSession, site_id: uuid.UUID, start: datetime, end: datetime
) -> dict[str, Any]:
    """The funnel of the site's leads first seen in [start, end)."""
    rows = await session.execute(
        select(
            Lead.temperature,
            Lead.status,
            Lead.lost_reason,
            Lead.identified,
            Lead.first_contacted_at.is_not(None),
            func.count(),
        )
        .where(
            Lead.site_id == site_id,
            Lead.merged_into_id.is_(None),
            Lead.first_seen_at >= start,
            Lead.first_seen_at < end,
        )
        .group_by(
            Lead.temperature,
            Lead.status,
            Lead.lost_reason,
            Lead.identified,
            Lead.first_contacted_at.is_not(None),
        )
    )
    by_temperature = dict.fromkeys(TEMPERATURES, 0)
    by_status = dict.fromkeys(STATUSES, 0)
    lost_by_reason = {reason: 0 for reason in LOST_REASONS if reason != "spam"}
    reached = dict.fromkeys(("first_touch", "lead", "contacted", "qualified", "won"), 0)
    spam = 0
    for temperature, status, reason, identified, was_contacted, count in rows:
        if status == "lost" and reason == "spam":
            spam += count
            continue
        by_temperature[temperature] = by_temperature.get(temperature, 0) + count
        by_status[status] = by_status.get(status, 0) + count
        if status == "lost":
            key = reason or "unknown"
            lost_by_reason[key] = lost_by_reason.get(key, 0) + count
        won = status == "won"
        qualified = won or status == "qualified"
        contacted = qualified or status == "contacted" or bool(was_contacted)
        reached["first_touch"] += count
        reached["won"] += count * won
        reached["qualified"] += count * qualified
        reached["contacted"] += count * contacted
        reached["lead"] += count * (contacted or bool(identified))
    steps = []
    previous = None
    for step, count in reached.items():
        steps.append(
            {
                "step": step,
                "count": count,
                "conversion_rate": None if previous is None else _rate(count, previous),
            }
        )
        previous = count
    return {
        "from_": start,
        "to": end,
        "leads": reached["first_touch"],
        "by_temperature": by_temperature,
        "by_status": by_status,
        "funnel": steps,
        "overall_conversion_rate": _rate(reached["won"], reached["first_touch"]),
        "lost_by_reason": lost_by_reason,
        "spam": spam,
        "notes": [SPAM_NOTE, STEPS_NOTE],
    }
