"""Deadlines as database rows: the first-contact clock (overdue at `contact_by`, escalations
at docs/domain.md's marks) and cart abandonment with its follow-ups.

Timers are written in the transaction of the change that starts them, and fired by whichever
worker claims them once due (`FOR UPDATE SKIP LOCKED`, in one transaction with the messages
they cause), so they survive restarts and fire once.
"""

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Insert, Table, and_, bindparam, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import wakeups
from app.config import WebhookSettings
from app.db import utcnow
from app.domain import lead_writes
from app.domain.changes import LeadChange
from app.domain.lead_rows import LeadRow, lead_row
from app.domain.tables import Lead
from app.metrics import TIMER_LAG_SECONDS
from app.scoring import scorer
from app.team import assignment, escalation
from app.webhooks import outbox
from app.webhooks.models import LeadTimer
from app.webhooks.payloads import lead_data, top_rules

logger = logging.getLogger(__name__)

# Before the ladder, the first-contact timers were all of this kind (mark: minutes after
# turning hot); ones still pending fire as the default ladder's step at their mark.
FIRST_CONTACT = "first_contact"
# The ladder's steps (app.team.escalation: the kind is the step's action), and the assignment
# of a lead that waited for the next opening (mark 0: at the clock's start).
ASSIGN_AT_OPENING = "assign_at_opening"
FIRST_CONTACT_KINDS = (FIRST_CONTACT, ASSIGN_AT_OPENING, *escalation.ACTIONS)
CART_ABANDONED = "cart_abandoned"
CART_FOLLOW_UP = "cart_follow_up"
CART_KINDS = (CART_ABANDONED, CART_FOLLOW_UP)


def insert_ignoring_conflicts(conn: AsyncConnection, table: Table) -> Insert:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def cart_episode(cart: dict[str, Any]) -> str:
    """A cart lasts until an order (the profile keeps the last order's time in the cart)."""
    return f"cart:{cart.get('ordered_at') or '-'}"


def _links(event: Any) -> bool:
    """An event that can merge two leads: it names two identities."""
    return bool(event.previous_id or (event.anonymous_id and event.user_id))


def _timer(p: LeadRow, kind: str, episode: str, mark: float, due: datetime) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "site_id": p["site_id"],
        "lead_id": p["id"],
        "kind": kind,
        "episode": episode,
        "mark": mark,
        "due_at": due,
        "status": "pending",
        "created_at": utcnow(),
    }


async def schedule_first_contact(
    conn: AsyncConnection,
    profiles: Sequence[LeadRow],
    ladders: Mapping[uuid.UUID, escalation.EscalationSettings],
    starts: Mapping[uuid.UUID, datetime] | None = None,
) -> None:
    """Start the ladder of leads that turned hot: one timer per step of their site's ladder,
    `after_minutes` from the start of the lead's clock (when it turned hot, or the next
    opening given in `starts`, where an `assign_at_opening` timer comes first)."""
    hot = [(p, hot_at) for p in profiles if (hot_at := p["became_hot_at"]) is not None]
    if not hot:
        return
    starts = starts or {}
    t = cast(Table, LeadTimer.__table__)
    episodes = [{"lead": p["id"], "ep": hot_at.isoformat()} for p, hot_at in hot]
    await conn.execute(
        update(t)
        .where(
            t.c.lead_id == bindparam("lead"),
            # (No IN list: executemany cannot expand one.)
            or_(*(t.c.kind == kind for kind in FIRST_CONTACT_KINDS)),
            t.c.status == "pending",
            t.c.episode != bindparam("ep"),
        )
        .values(status="cancelled"),
        episodes,
    )
    rows: list[dict[str, Any]] = []
    for p, hot_at in hot:
        start = starts.get(p["id"], hot_at)
        episode = hot_at.isoformat()
        if p["id"] in starts:
            rows.append(_timer(p, ASSIGN_AT_OPENING, episode, 0, start))
        rows.extend(
            _timer(
                p,
                step.action,
                episode,
                step.after_minutes,
                start + timedelta(minutes=step.after_minutes),
            )
            for step in ladders[p["site_id"]].ladder
        )
    if rows:
        await conn.execute(insert_ignoring_conflicts(conn, t), rows)
        # The timers loop sleeps until the earliest timer it knows of: it learns of these
        # (a step can be due at once: a late event's lead turned hot in the past).
        await outbox.wake_after_commit(conn, deliveries=False, timers=True)


async def track_carts(
    conn: AsyncConnection, changes: Sequence[LeadChange], settings: WebhookSettings, now: datetime
) -> None:
    """Start or push back each active cart's abandonment timer; `Cart Abandoned` from the
    tracker makes it due now; an order cancels the cart's timers, an unsubscribe its
    follow-ups."""
    t = cast(Table, LeadTimer.__table__)
    cancel_cart: list[uuid.UUID] = []
    cancel_follow_ups: list[uuid.UUID] = []
    ordered: dict[uuid.UUID, str] = {}  # a lead that may have merged -> its cart's episode
    timers: list[dict[str, Any]] = []
    wake = False
    for change in changes:
        p = change.profile
        names = {e.name for e in change.events if e.type == "track"}
        if "Order Completed" in names:
            cancel_cart.append(p["id"])
        elif (p.get("cart") or {}).get("ordered_at") and any(map(_links, change.events)):
            # A merge can bring an order (in the merged lead's history) into this lead's
            # cart: its timers of the cart before that order are stale.
            ordered[p["id"]] = cart_episode(p["cart"])
        if "Unsubscribed" in names or p.get("subscribed") is False:
            cancel_follow_ups.append(p["id"])
        cart = p.get("cart") or {}
        if "Cart Abandoned" in names:
            due, wake = now, True
        elif cart.get("items"):
            due = now + timedelta(minutes=settings.cart_abandoned_after_minutes)
        else:
            continue
        timers.append(_timer(p, CART_ABANDONED, cart_episode(cart), 0, due))
        # Due before the timers loop's next poll: it must learn of it (else it finds it then).
        wake = wake or due - now < timedelta(seconds=settings.poll_seconds)
    if not (cancel_cart or cancel_follow_ups or ordered or timers):
        return  # most groups: the statements below are built per group, so skip them
    # Cancellations are one set-based statement each (an IN list cannot go through
    # executemany, and a group may hold orders of many leads).
    if cancel_cart:
        await conn.execute(
            update(t)
            .where(t.c.lead_id.in_(cancel_cart), t.c.status == "pending", t.c.kind.in_(CART_KINDS))
            .values(status="cancelled")
        )
    if cancel_follow_ups:
        await conn.execute(
            update(t)
            .where(
                t.c.lead_id.in_(cancel_follow_ups),
                t.c.status == "pending",
                t.c.kind == CART_FOLLOW_UP,
            )
            .values(status="cancelled")
        )
    if ordered:
        current = case(*((t.c.lead_id == lead, ep) for lead, ep in ordered.items()))
        await conn.execute(
            update(t)
            .where(
                t.c.lead_id.in_(ordered),
                t.c.status == "pending",
                t.c.kind.in_(CART_KINDS),
                t.c.episode != current,
            )
            .values(status="cancelled")
        )
    pending = and_(t.c.lead_id == bindparam("lead"), t.c.status == "pending")
    if timers:
        await conn.execute(
            update(t)
            .where(pending, t.c.kind == CART_ABANDONED, t.c.episode == bindparam("ep"))
            .values(due_at=bindparam("due")),
            [{"lead": r["lead_id"], "ep": r["episode"], "due": r["due_at"]} for r in timers],
        )
        await conn.execute(insert_ignoring_conflicts(conn, t), timers)
    if wake:
        await outbox.wake_after_commit(conn, deliveries=False, timers=True)


_LAGS: dict[str, Any] = {}
_LATER = object()  # a timer left pending for the next pass
# Passes at most this often, each taking every timer due by then: timers that come due one
# after another (a busy shop's carts) are fired together, up to this late, instead of each in
# a pass (and a wake-up) of its own. The ladder's steps are minutes apart; a cart the
# tracker reports abandoned (due at once) waits that second at most.
# A timer left pending (its lead held) is looked at again this much later too.
PASS_SECONDS = 1.0
RUN_LIMIT = 200  # timers a pass
# The step a pending timer of the old kind takes, by its mark (the default ladder's).
_LEGACY_STEPS = {s.after_minutes: s.action for s in escalation.DEFAULT_LADDER}


def _lag(kind: str) -> Any:
    """The timer-lag histogram of a kind of timer (its child kept: `labels()` locks)."""
    child = _LAGS.get(kind)
    if child is None:
        child = _LAGS[kind] = TIMER_LAG_SECONDS.labels(kind)
    return child


class TimerService:
    """Fires due timers: checks the lead still needs it, writes the message, marks it fired."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: WebhookSettings,
        rule_sets: scorer.RuleSetCache | None = None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._engine = engine.execution_options(sqlite_immediate=True)  # read, then write
        self._settings = settings
        self._rule_sets = rule_sets
        self._now = now
        self._admins: dict[uuid.UUID, list[uuid.UUID]] = {}

    async def run_once(self, limit: int = RUN_LIMIT) -> int:
        """Fire the timers due now (at most `limit`); returns how many were fired or found no
        longer needed (a timer whose lead another transaction holds waits for the next
        pass)."""
        now = self._now()
        t, leads = cast(Table, LeadTimer.__table__), cast(Table, Lead.__table__)
        async with self._engine.begin() as conn:
            due = (
                await conn.execute(
                    select(t)
                    .where(t.c.status == "pending", t.c.due_at <= now)
                    .order_by(t.c.due_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not due:
                return 0
            # The leads are locked (the ladder hands leads over), but never waited for: a
            # recorded contact holds its lead and then waits for these timer rows.
            rows = await conn.execute(
                select(leads)
                .where(leads.c.id.in_({r.lead_id for r in due}))
                .with_for_update(skip_locked=True, key_share=True)
            )
            profiles = {row.id: lead_row(row._mapping) for row in rows}
            sites = {p["site_id"] for p in profiles.values()}
            self._admins = await assignment.admins(conn, sites) if sites else {}
            breakdowns = await top_rules(conn, self._rule_sets, profiles.values())
            owners = await assignment.owners(conn, (p["owner_id"] for p in profiles.values()))
            messages: list[outbox.NewMessage] = []
            fired, cancelled = [], []
            follow_ups: list[dict[str, Any]] = []
            for timer in due:
                p = profiles.get(timer.lead_id)
                if p is None:
                    continue  # held by another transaction: the next pass
                notice = await self._notice(conn, timer, p, now, owners)
                if notice is _LATER:
                    continue
                # The ladder's steps keep the metric's one label (kinds are per action).
                kind = FIRST_CONTACT if timer.kind in FIRST_CONTACT_KINDS else timer.kind
                _lag(kind).observe(max(0.0, (now - timer.due_at).total_seconds()))
                if notice is None:
                    cancelled.append({"tid": timer.id})
                    continue
                event_type, extra = cast(tuple[str, dict[str, Any]], notice)
                owner = owners.get(p["owner_id"]) if p["owner_id"] else None
                data = lead_data(
                    p, breakdowns.get(p["id"], []), self._settings.max_payload_bytes, owner, **extra
                )
                messages.append(outbox.NewMessage(p["site_id"], event_type, data, lead_id=p["id"]))
                fired.append({"tid": timer.id})
                if timer.kind == CART_ABANDONED and p.get("subscribed") is not False:
                    follow_ups.extend(
                        _timer(p, CART_FOLLOW_UP, timer.episode, n, now + timedelta(days=days))
                        for n, days in enumerate(self._settings.cart_follow_up_days[:3], 1)
                    )
            changed = {
                m.lead_id
                for m in messages
                if m.lead_id and m.event_type in (outbox.LEAD_REASSIGNED, outbox.LEAD_AT_RISK)
            }
            await lead_writes.touch(conn, sorted(changed), now)
            by_id = t.c.id == bindparam("tid")
            if fired:
                await conn.execute(
                    update(t).where(by_id).values(status="fired", fired_at=now), fired
                )
            if cancelled:
                await conn.execute(update(t).where(by_id).values(status="cancelled"), cancelled)
            if follow_ups:
                await conn.execute(insert_ignoring_conflicts(conn, t), follow_ups)
            await outbox.enqueue(conn, messages, now)
        return len(fired) + len(cancelled)

    def _people(self, p: LeadRow, *who: uuid.UUID | None, admins: bool = False) -> list[str]:
        """`notify`: these people, then the site's admins if asked (or if nobody else)."""
        ids = [i for i in who if i is not None]
        if admins or not ids:
            ids += self._admins.get(p["site_id"], [])
        return [str(i) for i in dict.fromkeys(ids)]

    async def _notice(
        self,
        conn: AsyncConnection,
        timer: Any,
        p: LeadRow,
        now: datetime,
        owners: dict[uuid.UUID, assignment.Owner],
    ) -> tuple[str, dict[str, Any]] | None | object:
        """The message a due timer sends (acting first: a handover, an assignment), None when
        it no longer applies, `_LATER` to leave it for the next pass."""
        if p["merged_into_id"] is not None:
            return None
        if timer.kind in FIRST_CONTACT_KINDS:
            return await self._ladder_step(conn, timer, p, now, owners)
        cart = p["cart"] or {}
        if cart_episode(cart) != timer.episode:  # ordered meanwhile
            return None
        if timer.kind == CART_ABANDONED:
            if not cart.get("items"):
                return None
            return outbox.CART_ABANDONED, {}
        if p["subscribed"] is False:
            return None
        total = len(self._settings.cart_follow_up_days[:3])
        return outbox.CART_FOLLOW_UP, {"follow_up": int(timer.mark), "of": total}

    async def _ladder_step(
        self,
        conn: AsyncConnection,
        timer: Any,
        p: LeadRow,
        now: datetime,
        owners: dict[uuid.UUID, assignment.Owner],
    ) -> tuple[str, dict[str, Any]] | None | object:
        hot_at = p["became_hot_at"]
        if p["first_contacted_at"] is not None or p["status"] != "new" or hot_at is None:
            return None
        if timer.episode != hot_at.isoformat():  # an earlier hot spell's
            return None
        action = timer.kind
        if action == FIRST_CONTACT:
            action = _LEGACY_STEPS.get(timer.mark, "alert_admins")
        extra: dict[str, Any] = {
            "step": action,
            "mark_minutes": timer.mark,
            "minutes_waiting": round((now - hot_at).total_seconds() / 60, 1),
        }
        owner = p["owner_id"]
        if action in (ASSIGN_AT_OPENING, "hand_over"):
            if not await assignment.try_lock_site(conn, p["site_id"]):
                return _LATER
            if action == ASSIGN_AT_OPENING:
                if owner is not None:
                    return None  # claimed before the opening
                new = (await assignment.assign_hot(conn, [p], now)).get(p["id"])
            else:
                new = await assignment.hand_over(conn, p, now)
            if new is not None:
                owners[new.id] = new
                previous = owners.get(owner) if owner else None
                extra["previous_owner"] = previous.as_json() if previous else None
                extra["notify"] = self._people(p, owner, new.id)
                return outbox.LEAD_REASSIGNED, extra
            if action == ASSIGN_AT_OPENING:
                return None  # nobody to give it to: the ladder goes on
            extra["notify"] = self._people(p, owner)
            return outbox.LEAD_FIRST_CONTACT_ESCALATED, extra
        if action == "remind_owner":
            extra["notify"] = self._people(p, owner)
            return outbox.LEAD_FIRST_CONTACT_OVERDUE, extra
        if action == "alert_admins":
            extra["notify"] = self._people(p, admins=True) or self._people(p, owner)
            return outbox.LEAD_FIRST_CONTACT_ESCALATED, extra
        extra["notify"] = self._people(p, owner, admins=True)
        extra["at_risk_reason"] = escalation.AT_RISK_REASON
        return outbox.LEAD_AT_RISK, extra

    async def next_due(self) -> datetime | None:
        """When the earliest pending timer is due (past: one a pass left for the next)."""
        t = cast(Table, LeadTimer.__table__)
        async with self._engine.connect() as conn:
            return cast(
                datetime | None,
                await conn.scalar(select(func.min(t.c.due_at)).where(t.c.status == "pending")),
            )

    async def run(self, stop: asyncio.Event, notifier: outbox.Notifier) -> None:
        """The worker loop: fire what is due, then sleep until the next timer is due, until
        woken (a commit that wrote timers, app.wakeups), or the poll interval (a fallback);
        a pass at most every `PASS_SECONDS` (a wake-up meanwhile is kept for the next)."""
        with notifier.wakeups.serving(outbox.TIMERS):
            while not stop.is_set():
                notifier.timers.clear()
                if await self.run_once() >= RUN_LIMIT:
                    continue  # more are due now
                sleep = self._settings.poll_seconds
                due = await self.next_due()
                if due is not None:
                    # Past: a due timer still pending was left for the next pass (its lead
                    # held by another transaction, or another process firing it).
                    sleep = min(sleep, (due - self._now()).total_seconds())
                sleep = max(sleep, PASS_SECONDS)
                await wakeups.sleep(stop, PASS_SECONDS)  # only a stop ends this part
                await wakeups.wait(stop, notifier.timers, sleep - PASS_SECONDS)
