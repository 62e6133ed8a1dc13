"""What must hold after the traffic, read from the database the server wrote.

`check` answers a `Report`: for each invariant the violations found (none: it held), with
enough detail to reproduce, and a few counts for the record.
"""

import uuid
from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.config import Settings
from app.domain.tables import Event, Lead, LeadIdentity
from app.scoring import engine, scorer
from app.scoring.models import RuleSetVersion
from app.webhooks import timers
from app.webhooks.models import LeadTimer, WebhookMessage
from tests.simulation import leads as lead_checks
from tests.simulation.driver import Outcome
from tests.simulation.report import Report
from tests.simulation.shop import Plan


async def _rows(conn: AsyncConnection, query: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in (await conn.execute(query)).mappings()]


async def check(
    db: AsyncEngine, site_id: uuid.UUID, plan: Plan, outcome: Outcome, settings: Settings
) -> Report:
    report = Report(stats={"rescore_changes_temperature": 0})
    _answers(report, plan, outcome)
    async with db.connect() as conn:
        events = await _rows(
            conn, select(Event.__table__).where(Event.site_id == site_id).order_by(Event.id)
        )
        leads = await _rows(conn, select(Lead.__table__).where(Lead.site_id == site_id))
        idents = await _rows(
            conn, select(LeadIdentity.__table__).where(LeadIdentity.site_id == site_id)
        )
        messages = await _rows(
            conn,
            select(WebhookMessage.__table__)
            .where(WebhookMessage.site_id == site_id)
            .order_by(WebhookMessage.created_at),
        )
        lead_timers = await _rows(
            conn, select(LeadTimer.__table__).where(LeadTimer.site_id == site_id)
        )
        version, definition = (
            await conn.execute(
                select(RuleSetVersion.version, RuleSetVersion.definition)
                .where(RuleSetVersion.site_id == site_id)
                .order_by(RuleSetVersion.version.desc())
                .limit(1)
            )
        ).one()
        compiled = engine.compile_rule_set(scorer.rule_set_for_version(definition, version))
        by_id = {lead["id"]: lead for lead in leads}
        _storage(report, plan, outcome, events)
        _crawlers(report, plan, events, idents)
        _persons(report, plan, events, idents, by_id)
        live = [lead for lead in leads if lead["merged_into_id"] is None]
        merged_into = Counter(lead["merged_into_id"] for lead in leads if lead["merged_into_id"])
        report.stats.update(
            events_stored=len(events),
            leads=len(live),
            merged_leads=len(leads) - len(live),
            hot_leads=sum(lead["temperature"] == "hot" for lead in live),
            webhook_messages=dict(Counter(m["event_type"] for m in messages)),
        )
        await lead_checks.check_leads(
            report, conn, compiled, live, events, messages, outcome, merged_into, settings
        )
    _cart_timers(report, lead_timers, by_id)
    return report


def _answers(report: Report, plan: Plan, outcome: Outcome) -> None:
    for error in outcome.errors:
        report.add("no_5xx", f"no answer: {error}")
    for a in outcome.answers:
        if a.status >= 500 or not 200 <= a.status < 300:
            report.add("no_5xx", f"{a.request.path} lane {a.lane} #{a.index}: {a.status} {a.body}")
    report.stats["statuses"] = dict(outcome.statuses)


def _storage(report: Report, plan: Plan, outcome: Outcome, events: list[dict[str, Any]]) -> None:
    acked = [m for a in outcome.acknowledged() for m in a.request.message_ids]
    distinct = set(acked)
    stored = Counter(e["message_id"] for e in events)
    for message_id in sorted(distinct - set(stored)):
        report.add("stored_once", f"acknowledged but not stored: {message_id}")
    for message_id, n in stored.items():
        if n != 1 or message_id not in plan.events:
            report.add(
                "stored_once", f"{message_id} stored {n} times (sent: {message_id in distinct})"
            )
    totals = outcome.totals()
    expected = {
        "accepted": len(distinct),
        "duplicates": len(acked) - len(distinct),
        "rejected": 0,
        "bots": len(distinct & plan.bots),
    }
    for key, want in expected.items():
        if totals[key] != want:
            report.add("stored_once", f"answers counted {key}={totals[key]}, expected {want}")
    for e in events:
        sent = plan.events.get(e["message_id"])
        if sent is not None and e["timestamp"] != datetime.fromisoformat(sent["timestamp"]):
            report.add("stored_once", f"{e['message_id']} stored at {e['timestamp']}, sent {sent}")


def _crawlers(
    report: Report, plan: Plan, events: list[dict[str, Any]], idents: list[dict[str, Any]]
) -> None:
    for e in events:
        if e["is_bot"] != (e["message_id"] in plan.bots):
            report.add("crawlers_unattached", f"{e['message_id']} is_bot={e['is_bot']}")
        if e["message_id"] in plan.bots and e["lead_id"] is not None:
            report.add("crawlers_unattached", f"crawler event {e['message_id']} on a lead")
    for ident in idents:
        if ident["value"] in plan.crawler_ids:
            report.add("crawlers_unattached", f"crawler id {ident['value']} has a lead")


def _persons(
    report: Report,
    plan: Plan,
    events: list[dict[str, Any]],
    idents: list[dict[str, Any]],
    by_id: dict[uuid.UUID, dict[str, Any]],
) -> None:
    """Every id resolves to one live lead; a person's devices and userId to the same one; every
    human event is on the live lead of its ids."""
    lead_of = {ident["value"]: ident["lead_id"] for ident in idents}
    live_of = {value: _live(by_id, lead) for value, lead in lead_of.items()}
    for user_id, devices in plan.persons.items():
        found = {live_of.get(v) for v in (user_id, *devices)}
        if len(found) != 1 or None in found:
            report.add("one_lead_per_person", f"{user_id} {devices}: leads {found}")
    for e in events:
        if e["is_bot"]:
            continue
        want = live_of.get(e["anonymous_id"])
        if e["lead_id"] != want or by_id[e["lead_id"]]["merged_into_id"] is not None:
            report.add("one_lead_per_person", f"{e['message_id']} on {e['lead_id']}, not {want}")


def _live(by_id: dict[uuid.UUID, dict[str, Any]], lead_id: uuid.UUID) -> uuid.UUID | None:
    seen = set()
    while lead_id in by_id and by_id[lead_id]["merged_into_id"] is not None:
        if lead_id in seen:
            return None
        seen.add(lead_id)
        lead_id = by_id[lead_id]["merged_into_id"]
    return lead_id if lead_id in by_id else None


def _cart_timers(
    report: Report, lead_timers: list[dict[str, Any]], by_id: dict[uuid.UUID, dict[str, Any]]
) -> None:
    """No cart timer is pending after an order: a pending one belongs to the lead's current
    cart (an order starts a new one). A merged lead's timers never fire."""
    dormant = emptied = 0
    survivors = {lead["merged_into_id"] for lead in by_id.values()}
    for t in lead_timers:
        if t["status"] != "pending" or t["kind"] not in timers.CART_KINDS:
            continue
        lead = by_id[t["lead_id"]]
        if lead["merged_into_id"] is not None:
            dormant += 1
            continue
        cart = lead["cart"] or {}
        if t["episode"] != timers.cart_episode(cart):
            # Reported apart: a merge that brings an order into the survivor's cart must
            # cancel the survivor's timers of the cart before that order too.
            merged = lead["id"] in survivors
            where = "merged_cart_timers" if merged else "cart_timers"
            report.add(where, f"lead {lead['id']}: {t['kind']} #{t['mark']} pending for "
                       f"{t['episode']}, cart now {timers.cart_episode(cart)}")  # fmt: skip
        elif not cart.get("items"):
            emptied += 1  # items removed, no order: re-checked (and cancelled) when due
    report.stats["pending_cart_timers"] = {"merged_leads": dormant, "emptied_carts": emptied}
