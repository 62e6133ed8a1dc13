"""What every background loop is given, and the shape of a loop; app.worker runs them.

The context carries the scoring rule-set cache and the lead-change consumer, so this module
sits above app.scoring (whose own loops take `app.scoring.worker.ScoringContext`, the part of
this context they use) and below the domains whose loops take it (ingestion, webhooks).
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.domain.changes import AfterGroup, Memberships
from app.scoring.scorer import RuleSetCache


@dataclass(frozen=True)
class BackgroundContext:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    rule_sets: RuleSetCache
    # Where lead changes made in the background go (the webhook outbox), as ingestion's do.
    lead_changes: AfterGroup | None = None
    # Audience membership of the leads the temperature refresher looks at (app.audiences).
    memberships: Memberships | None = None


# A loop runs until `stop` is set; it must return promptly after that.
BackgroundLoop = Callable[[BackgroundContext, asyncio.Event], Awaitable[None]]
