"""The delivery loop: claims due deliveries from the outbox, sends each (one `attempt`), logs
every attempt and schedules retries.

Any number of processes share the outbox. A claim takes due rows with `FOR UPDATE SKIP
LOCKED` (ignored on SQLite, whose single writer serializes claims) and sets a lease
(`locked_until`): no two workers send one delivery at the same time, and a worker that dies
mid-attempt only delays its deliveries until the lease expires.
"""

import asyncio
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import orjson
from sqlalchemy import Table, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import wakeups
from app.config import Settings, WebhookSettings
from app.crypto import SecretBox, SecretsKeyError
from app.db import utcnow
from app.metrics import WEBHOOK_ATTEMPT_SECONDS, WEBHOOK_ATTEMPTS
from app.webhooks import outbox, signing
from app.webhooks.attempt import AttemptOutcome, Sender
from app.webhooks.channel_delivery import ChannelSender
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookMessage

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Claimed:
    delivery_id: uuid.UUID
    attempts: int
    locked_until: datetime
    message_id: uuid.UUID
    payload: dict[str, Any]
    endpoint_id: uuid.UUID
    url: str
    secrets: list[str]
    event_type: str = ""
    request_id: str | None = None  # the request(s) that caused the message (app.logs)
    kind: str = "webhook"  # or a notification channel's (app.channels)
    user_id: uuid.UUID | None = None  # the channel's person
    site_id: uuid.UUID | None = None


class DeliveryService:
    """Sends the outbox's due deliveries. `now` is injectable so that tests control time;
    the signature's `webhook-timestamp` is always the wall clock (receivers check it)."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: WebhookSettings,
        box: SecretBox,
        now: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
        channels: Settings | None = None,
    ) -> None:
        """`channels`: the settings notification channels are sent with; None: this service
        sends webhooks only (channel deliveries are left to a service that has them)."""
        # Claims read then write: on SQLite the transaction takes the write lock up front
        # (BEGIN IMMEDIATE), so claims queue instead of failing on a stale snapshot.
        self._engine = engine.execution_options(sqlite_immediate=True)
        self._settings = settings
        self._box = box
        self._now = now
        self._rng = rng or random.Random()
        self._sender = Sender(settings)
        self._channels = ChannelSender(engine, channels, box, self._sender) if channels else None

    async def aclose(self) -> None:
        await self._sender.aclose()
        if self._channels is not None:
            await self._channels.aclose()

    async def __aenter__(self) -> "DeliveryService":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def claim(self, limit: int) -> list[Claimed]:
        """Lease up to `limit` due deliveries of enabled endpoints to this worker."""
        d = cast(Table, WebhookDelivery.__table__)
        e = cast(Table, WebhookEndpoint.__table__)
        m = cast(Table, WebhookMessage.__table__)
        now = self._now()
        until = now + timedelta(seconds=self._settings.lease_seconds)
        free = or_(d.c.locked_until.is_(None), d.c.locked_until < now)
        async with self._engine.begin() as conn:
            ids = (
                (
                    await conn.execute(
                        select(d.c.id)
                        .join(e, e.c.id == d.c.endpoint_id)
                        .where(
                            d.c.status == "pending",
                            d.c.next_attempt_at <= now,
                            free,
                            e.c.enabled.is_(True),
                            *(() if self._channels else (e.c.kind == "webhook",)),
                        )
                        .order_by(d.c.next_attempt_at)
                        .limit(limit)
                        .with_for_update(of=d, skip_locked=True)
                    )
                )
                .scalars()
                .all()
            )
            if not ids:
                return []
            # The lease condition again: on SQLite two connections may have read the same ids.
            taken = (
                (
                    await conn.execute(
                        update(d)
                        .where(d.c.id.in_(ids), free)
                        .values(locked_until=until)
                        .returning(d.c.id)
                    )
                )
                .scalars()
                .all()
            )
            if not taken:
                return []
            rows = await conn.execute(
                select(
                    d.c.id, d.c.attempts, m.c.id, m.c.payload, e.c.id, e.c.url,
                    e.c.secret_encrypted, e.c.previous_secret_encrypted,
                    e.c.previous_secret_until, m.c.event_type, m.c.request_id,
                    e.c.kind, e.c.user_id, e.c.site_id,
                )
                .join(m, m.c.id == d.c.message_id)
                .join(e, e.c.id == d.c.endpoint_id)
                .where(d.c.id.in_(taken))
            )  # fmt: skip
            claimed = []
            for row in rows:
                (did, attempts, mid, payload, eid, url, secret, previous, previous_until) = row[:9]
                encrypted = [secret]
                if previous and previous_until is not None and previous_until > now:
                    encrypted.append(previous)
                secrets = self._decrypt(eid, encrypted)
                if secrets is not None:
                    claimed.append(
                        Claimed(
                            did, attempts, until, mid, payload, eid, url, secrets,
                            event_type=row.event_type, request_id=row.request_id,
                            kind=row.kind, user_id=row.user_id, site_id=row.site_id,
                        )
                    )  # fmt: skip
        return claimed

    def _decrypt(self, endpoint_id: uuid.UUID, encrypted: list[str]) -> list[str] | None:
        """The signing secrets in clear; None (and an error logged) under a wrong key: the
        delivery keeps its lease and is tried again when it expires, unsigned never, and the
        endpoint is not charged with a failure that is the server's configuration."""
        try:
            return [self._box.decrypt(token) for token in encrypted]
        except SecretsKeyError as exc:
            logger.error("webhook endpoint %s: not delivering: %s", endpoint_id, exc)
            return None

    async def attempt(self, claimed: Claimed) -> AttemptOutcome:
        """Send one claimed delivery and record the outcome."""
        msg_id = signing.message_id(claimed.message_id)
        if claimed.kind != "webhook" and self._channels is not None:
            assert claimed.site_id is not None
            outcome = await self._channels.send(
                claimed.kind, claimed.site_id, claimed.user_id, claimed.url,
                claimed.secrets[0] if claimed.secrets else None,
                claimed.event_type, claimed.payload,
            )  # fmt: skip
        else:
            body = orjson.dumps(claimed.payload).decode()
            headers = signing.headers(claimed.secrets, msg_id, utcnow(), body)
            outcome = await self._sender.send(claimed.url, headers, body.encode())
        next_attempt_at = await self._record(claimed, outcome)
        _observe(claimed, msg_id, outcome, next_attempt_at)
        return outcome

    def retry_delay(self, attempts: int, outcome: AttemptOutcome) -> timedelta | None:
        """The wait before the next attempt after `attempts` failed ones; None: give up."""
        schedule = self._settings.retry_schedule_seconds
        if attempts > len(schedule):
            return None
        if outcome.retry_after_seconds is not None:
            return timedelta(seconds=min(outcome.retry_after_seconds, max(schedule)))
        base = schedule[attempts - 1]
        jitter = self._settings.retry_jitter
        return timedelta(seconds=base * self._rng.uniform(1 - jitter, 1 + jitter))

    async def _record(self, claimed: Claimed, outcome: AttemptOutcome) -> datetime | None:
        """Record the attempt; answers when the next one is due (None: no more attempts)."""
        d, e = cast(Table, WebhookDelivery.__table__), cast(Table, WebhookEndpoint.__table__)
        now = self._now()
        attempts = claimed.attempts + 1
        mine = (d.c.id == claimed.delivery_id) & (d.c.locked_until == claimed.locked_until)
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(cast(Table, WebhookAttempt.__table__)).values(
                    delivery_id=claimed.delivery_id,
                    endpoint_id=claimed.endpoint_id,
                    message_id=claimed.message_id,
                    attempted_at=now,
                    status_code=outcome.status_code,
                    response_body=outcome.response_body,
                    error=outcome.error,
                    duration_ms=outcome.duration_ms,
                    succeeded=outcome.succeeded,
                )
            )
            done = {"attempts": attempts, "last_attempt_at": now, "locked_until": None}
            if outcome.succeeded:
                await conn.execute(update(d).where(mine).values(status="succeeded", **done))
                await conn.execute(
                    update(e).where(e.c.id == claimed.endpoint_id, e.c.consecutive_failures != 0)
                    .values(consecutive_failures=0, failing_since=None)
                )  # fmt: skip
                return None
            delay = self.retry_delay(attempts, outcome)
            next_attempt_at = None if delay is None else now + delay
            if next_attempt_at is None:
                await conn.execute(update(d).where(mine).values(status="failed", **done))
            else:
                await conn.execute(
                    update(d).where(mine).values(next_attempt_at=next_attempt_at, **done)
                )
            await self._count_failure(conn, claimed.endpoint_id, outcome, now)
            return next_attempt_at

    async def _count_failure(
        self, conn: AsyncConnection, endpoint_id: uuid.UUID, outcome: AttemptOutcome, now: datetime
    ) -> None:
        """Count a failed attempt; disable the endpoint on 410 Gone, or once its failures
        have gone on for the configured span (and number): a burst of concurrent attempts
        failing within a second is a short outage, not a dead endpoint. Its messages stay
        pending while it is disabled."""
        e = cast(Table, WebhookEndpoint.__table__)
        endpoint = e.c.id == endpoint_id
        row = (
            await conn.execute(
                update(e)
                .where(endpoint)
                .values(
                    consecutive_failures=e.c.consecutive_failures + 1,
                    failing_since=func.coalesce(e.c.failing_since, now),
                )
                .returning(e.c.consecutive_failures, e.c.failing_since, e.c.enabled)
            )
        ).first()
        if row is None or not row.enabled:
            return
        settings = self._settings
        span = timedelta(hours=settings.disable_after_failing_hours)
        reason = None
        if outcome.gone is not None:
            reason = outcome.gone
        elif outcome.status_code == 410:
            reason = "the endpoint answered 410 Gone"
        elif row.consecutive_failures >= settings.disable_after_failures and (
            row.failing_since is not None and now - row.failing_since >= span
        ):
            hours = (now - row.failing_since).total_seconds() / 3600
            reason = f"{row.consecutive_failures} failed attempts in a row over {hours:.0f} hours"
        if reason:
            await conn.execute(
                update(e).where(endpoint)
                .values(enabled=False, disabled_reason=reason, disabled_at=now, updated_at=now)
            )  # fmt: skip
            logger.warning("webhook endpoint %s disabled: %s", endpoint_id, reason)

    async def run_once(self, limit: int = 100) -> int:
        """Claim what is due and send it all (tests, and one pass of the loop)."""
        claimed = await self.claim(limit)
        await asyncio.gather(*(self.attempt(c) for c in claimed))
        return len(claimed)

    async def next_due(self) -> datetime | None:
        """When the next pending delivery of an enabled endpoint is due (a retry), if later."""
        d = cast(Table, WebhookDelivery.__table__)
        e = cast(Table, WebhookEndpoint.__table__)
        async with self._engine.connect() as conn:
            return cast(
                datetime | None,
                await conn.scalar(
                    select(func.min(d.c.next_attempt_at))
                    .join(e, e.c.id == d.c.endpoint_id)
                    .where(
                        d.c.status == "pending",
                        d.c.next_attempt_at > self._now(),
                        e.c.enabled.is_(True),
                    )
                ),
            )

    async def run(self, stop: asyncio.Event, notifier: outbox.Notifier) -> None:
        """The worker loop: keep up to `concurrency` attempts in flight; claim again when
        woken (a commit, app.wakeups), when an attempt ends, when the next retry is due, or
        at the poll interval (a fallback: another process's attempts whose lease expired)."""
        with notifier.wakeups.serving(outbox.DELIVERIES):
            await self._run(stop, notifier)

    async def _run(self, stop: asyncio.Event, notifier: outbox.Notifier) -> None:
        in_flight: set[asyncio.Task[Any]] = set()
        try:
            while not stop.is_set():
                notifier.deliveries.clear()
                free = self._settings.concurrency - len(in_flight)
                claimed = await self.claim(free) if free > 0 else []
                for c in claimed:
                    task = asyncio.create_task(self._attempt_logged(c, notifier))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                if claimed and len(claimed) == free:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                sleep = self._settings.poll_seconds
                due = await self.next_due()
                if due is not None:
                    sleep = min(sleep, (due - self._now()).total_seconds())
                await wakeups.wait(stop, notifier.deliveries, sleep)
        finally:
            if in_flight:
                await asyncio.wait(in_flight, timeout=self._settings.attempt_timeout_seconds + 1)
            await self.aclose()

    async def _attempt_logged(self, claimed: Claimed, notifier: outbox.Notifier) -> None:
        try:
            outcome = await self.attempt(claimed)
        except Exception:
            logger.exception("webhook delivery %s failed to run", claimed.delivery_id)
            return
        if not outcome.succeeded:  # a retry scheduled: the loop's sleep is until the earliest
            notifier.deliveries.set()


def outcome_label(outcome: AttemptOutcome) -> str:
    """The attempt's outcome as the metric counts it (a small, fixed set)."""
    if outcome.succeeded:
        return "success"
    if outcome.status_code is not None:
        return "success" if outcome.succeeded else "http_error"
    error = outcome.error or ""
    if error == "timeout":
        return "timeout"
    if error.startswith("refused:"):
        return "refused"
    return "network_error"


def _observe(
    claimed: Claimed, msg_id: str, outcome: AttemptOutcome, next_attempt_at: datetime | None
) -> None:
    """Count the attempt and log it: a line per attempt, with what a person on call asks."""
    label = outcome_label(outcome)
    WEBHOOK_ATTEMPTS.labels(label).inc()
    WEBHOOK_ATTEMPT_SECONDS.observe(outcome.duration_ms / 1000)
    succeeded = label == "success"
    logger.log(
        logging.INFO if succeeded else logging.WARNING,
        "webhook %s to endpoint %s: %s",
        claimed.event_type,
        claimed.endpoint_id,
        outcome.status_code if outcome.status_code is not None else outcome.error,
        extra={
            "endpoint_id": str(claimed.endpoint_id),
            "message_id": msg_id,
            "delivery_id": str(claimed.delivery_id),
            "event_type": claimed.event_type,
            "request_id": claimed.request_id,
            "attempt": claimed.attempts + 1,
            "outcome": label,
            "status_code": outcome.status_code,
            "error": outcome.error,
            "duration_ms": outcome.duration_ms,
            "next_attempt_at": None if next_attempt_at is None else next_attempt_at.isoformat(),
            "gave_up": not succeeded and next_attempt_at is None,
        },
    )
