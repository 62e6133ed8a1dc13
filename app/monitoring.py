"""`GET /metrics`: the process's metrics (app.metrics) and gauges read from the database.

The database gauges describe the deployment, not a process: whichever process is scraped
reads them (any replica answers the same), and they are never summed across workers. They
are read at most every `metrics.database_cache_seconds` per process, so that a scrape every
15 s by two Prometheus servers costs one read, by queries that stay cheap as the shop grows
(docs/performance.md: leads by temperature at 200k leads).
"""

import asyncio
import hmac
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import cast

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import MetricsSettings
from app.db import utcnow
from app.domain.tables import AWAITING_CONTACT, Lead
from app.errors import Unauthorized
from app.http import header
from app.leads.schemas import TEMPERATURES
from app.metrics import exposition
from app.openapi import METRICS_TOKEN, errors
from app.webhooks.models import WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

READ_TIMEOUT_SECONDS = 5.0


async def read_database_gauges(engine: AsyncEngine, now: datetime) -> list[Metric]:
    """The deployment's gauges, read now: four statements, each on an index or one pass."""
    leads = cast(Table, Lead.__table__)
    d = cast(Table, WebhookDelivery.__table__)
    e = cast(Table, WebhookEndpoint.__table__)
    async with engine.connect() as conn:
        by_temperature = dict.fromkeys(TEMPERATURES, 0)
        rows = await conn.execute(
            select(leads.c.temperature, func.count())
            .where(leads.c.merged_into_id.is_(None))
            .group_by(leads.c.temperature)
        )
        for temperature, count in rows:
            by_temperature[temperature] = count
        # The same condition as the partial index of hot leads awaiting contact: read there.
        overdue = await conn.scalar(
            select(func.count())
            .select_from(leads)
            .where(text(AWAITING_CONTACT), leads.c.contact_by < now)
        )
        pending = await conn.scalar(
            select(func.count()).select_from(d).where(d.c.status == "pending")
        )
        # The longest-waiting due delivery, along the index of (status, next_attempt_at).
        oldest_due = await conn.scalar(
            select(d.c.next_attempt_at)
            .join(e, e.c.id == d.c.endpoint_id)
            .where(d.c.status == "pending", d.c.next_attempt_at <= now, e.c.enabled.is_(True))
            .order_by(d.c.next_attempt_at)
            .limit(1)
        )
    leads_gauge = GaugeMetricFamily(
        "leadheat_leads", "Leads (not merged into another) by temperature", labels=["temperature"]
    )
    for temperature, count in by_temperature.items():
        leads_gauge.add_metric([temperature], count)
    age = 0.0 if oldest_due is None else max(0.0, (now - oldest_due).total_seconds())
    return [
        leads_gauge,
        GaugeMetricFamily(
            "leadheat_first_contacts_overdue",
            "Hot leads still new and uncontacted after their contact_by (the five minutes)",
            value=overdue or 0,
        ),
        GaugeMetricFamily(
            "leadheat_webhook_outbox_pending",
            "Webhook deliveries waiting: due, in a retry's wait, or for a disabled endpoint",
            value=pending or 0,
        ),
        GaugeMetricFamily(
            "leadheat_webhook_outbox_oldest_pending_age_seconds",
            "How long the longest-waiting due delivery to an enabled endpoint has waited since"
            " it was due (its message's time, or its retry's); 0 when none is due",
            value=age,
        ),
    ]


class DatabaseGauges:
    """The database gauges, re-read when older than `cache_seconds` (one read at a time);
    `leadheat_metrics_database_up` is 0 when the last read failed (the others are then
    left out rather than shown stale)."""

    def __init__(self, engine: AsyncEngine, cache_seconds: float) -> None:
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._read_at = -float("inf")
        self._families: list[Metric] = []
        self._up = 0
        self._lock = asyncio.Lock()

    async def families(self) -> Sequence[Metric]:
        async with self._lock:
            if time.monotonic() - self._read_at >= self._cache_seconds:
                try:
                    # Well within Prometheus' default scrape timeout (10 s): a slow database
                    # costs the scrape its database gauges, not the whole scrape.
                    async with asyncio.timeout(READ_TIMEOUT_SECONDS):
                        self._families = await read_database_gauges(self._engine, utcnow())
                    self._up = 1
                except Exception as exc:
                    logger.warning("metrics: reading the database gauges failed: %r", exc)
                    self._families, self._up = [], 0
                self._read_at = time.monotonic()
        up = GaugeMetricFamily(
            "leadheat_metrics_database_up",
            "1 if this scrape's database gauges could be read, else 0",
            value=self._up,
        )
        return [*self._families, up]


router = APIRouter(tags=["ops"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "The Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **errors(401),
    },
    openapi_extra=METRICS_TOKEN,
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics (README, Operations). Open unless `LEADHEAT_METRICS__TOKEN` is set:
    then it takes `Authorization: Bearer <token>`."""
    settings: MetricsSettings = request.app.state.settings.metrics
    if settings.token is not None:
        expected = f"Bearer {settings.token.get_secret_value()}".encode()
        given = (header(request, b"authorization") or "").encode()
        if not hmac.compare_digest(given, expected):
            raise Unauthorized(
                "Send the metrics token as `Authorization: Bearer <token>`.",
                headers={"WWW-Authenticate": 'Bearer realm="leadheat metrics"'},
            )
    gauges: DatabaseGauges = request.app.state.database_gauges
    body = exposition(await gauges.families())
    return Response(body, media_type=CONTENT_TYPE_LATEST)
