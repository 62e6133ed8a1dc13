"""The lead-change port: what ingestion (and the background jobs that rewrite leads) tell
the domains above them, and the scorer ingestion calls while it folds events in."""

import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from app.domain.events import IngestEvent
from app.domain.lead_rows import LeadRow


class Scorer(Protocol):
    """Keeps a lead's score current as its events are folded in (app.scoring.scorer)."""

    async def prepare(self, conn: AsyncConnection, site_ids: Iterable[uuid.UUID]) -> None: ...

    async def rescore_stale(
        self, conn: AsyncConnection, profiles: Sequence[LeadRow], force: set[uuid.UUID]
    ) -> None: ...

    def apply(self, profile: LeadRow, event: IngestEvent, now: datetime) -> None: ...

    def replay(self, profile: LeadRow, events: Sequence[IngestEvent]) -> None: ...

    def finish(self, profiles: Iterable[LeadRow], now: datetime) -> None: ...


@dataclass(frozen=True, slots=True)
class LeadChange:
    """What a group did to one lead, for consumers in the same transaction (webhook outbox)."""

    profile: LeadRow  # the lead after the group
    previous_temperature: str | None  # None: the lead is new
    previously_identified: bool
    events: tuple[IngestEvent, ...]  # the group's new events of this lead, in time order
    # The HTTP requests that brought them (app.logs' ids; none for background jobs' changes).
    request_ids: tuple[str, ...] = ()


# Called inside the group's transaction after every lead is written (the webhook outbox).
AfterGroup = Callable[[AsyncConnection, list[LeadChange]], Awaitable[None]]


class Consumers:
    """Several consumers as one `AfterGroup`, called in order (picklable, as the background
    jobs' process pools need, when each consumer is)."""

    def __init__(self, *consumers: AfterGroup) -> None:
        self.consumers = consumers

    async def __call__(self, conn: AsyncConnection, changes: list[LeadChange]) -> None:
        for consumer in self.consumers:
            await consumer(conn, changes)


class Memberships(Protocol):
    """Keeps audience membership current for leads the temperature refresher looks at
    (app.audiences): called with the due leads before they are written, it writes who
    entered or left and brings each lead's `next_check_at` forward in place to the next
    moment time alone moves it in or out of an audience."""

    async def look(
        self, conn: AsyncConnection, profiles: Sequence[LeadRow], now: datetime
    ) -> None: ...
