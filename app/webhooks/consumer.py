"""What a group of ingested events means for webhook consumers, decided inside ingestion's
transaction (an `after_group` consumer): temperature changes, hot leads (with `contact_by`,
the first-contact timers and their owner, app.team.assignment), identified leads, and
cart-abandonment timers."""

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from app.config import WebhookSettings
from app.db import utcnow
from app.domain import lead_writes
from app.domain.changes import LeadChange
from app.domain.lead_rows import LeadRow
from app.scoring import scorer
from app.team import assignment, escalation
from app.webhooks import outbox, timers
from app.webhooks.payloads import lead_data, top_rules


class WebhookConsumer:
    """The `after_group` consumer: writes outbox messages and timers in the group's
    transaction, and sets `leads.contact_by` for leads that turned hot."""

    def __init__(
        self,
        settings: WebhookSettings,
        rule_sets: scorer.RuleSetCache | None,
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
                turned_hot.append(p)
                notices.append((outbox.LEAD_HOT, change))
            if before != temperature and not (before is None and temperature == "cold"):
                notices.append((outbox.LEAD_TEMPERATURE_CHANGED, change))
            if not change.previously_identified and p.get("identified"):
                notices.append((outbox.LEAD_IDENTIFIED, change))
        if turned_hot:
            ladders = await escalation.settings_of(conn, {p["site_id"] for p in turned_hot})
            starts = await self._clock_starts(conn, turned_hot, ladders, now)
            for p in turned_hot:
                hot_at = p["became_hot_at"]
                assert hot_at is not None  # turned_hot's condition
                p["contact_by"] = starts.get(p["id"], hot_at) + window
            await lead_writes.set_contact_by(conn, turned_hot)
            waiting = {site for site, s in ladders.items() if s.off_hours == "next_opening"}
            await assignment.assign_hot(conn, turned_hot, now, no_on_call=waiting)
            await timers.schedule_first_contact(
                conn,
                [p for p in turned_hot if p.get("first_contacted_at") is None],
                ladders,
                starts,
            )
        await timers.track_carts(conn, changes, self._settings, now)
        if notices:
            await outbox.enqueue(conn, await self._messages(conn, notices), now)

    @staticmethod
    async def _clock_starts(
        conn: AsyncConnection,
        turned_hot: Sequence[LeadRow],
        ladders: dict[uuid.UUID, escalation.EscalationSettings],
        now: datetime,
    ) -> dict[uuid.UUID, datetime]:
        """The leads whose clock starts later: those of `next_opening` sites where no manager
        works now (their clock starts at the earliest manager's next opening)."""
        starts: dict[uuid.UUID, datetime] = {}
        for site, s in ladders.items():
            if s.off_hours != "next_opening":
                continue
            start = escalation.clock_start(now, await escalation.shifts(conn, site))
            if start > now:
                starts.update((p["id"], start) for p in turned_hot if p["site_id"] == site)
        return starts

    async def _messages(
        self, conn: AsyncConnection, notices: Sequence[tuple[str, LeadChange]]
    ) -> list[outbox.NewMessage]:
        profiles = {c.profile["id"]: c.profile for _, c in notices}
        breakdowns = await top_rules(conn, self._rule_sets, profiles.values())
        owners = await assignment.owners(conn, (p["owner_id"] for p in profiles.values()))
        messages = []
        for event_type, change in notices:
            p = change.profile
            data = lead_data(
                p,
                breakdowns.get(p["id"], []),
                self._settings.max_payload_bytes,
                owners.get(p["owner_id"]) if p["owner_id"] else None,
                previous_temperature=change.previous_temperature,
            )
            messages.append(
                outbox.NewMessage(
                    p["site_id"], event_type, data, lead_id=p["id"], request_ids=change.request_ids
                )
            )
        return messages
