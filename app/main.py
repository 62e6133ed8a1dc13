"""The application factory: routers, error handlers, lifespan (engine, ingestion pipeline)."""

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel
from sqlalchemy import text

from app import monitoring
from app.audiences import endpoints as audiences_endpoints
from app.audiences.membership import DueTimes
from app.background import BackgroundContext
from app.channel_actions import endpoints as channel_endpoints
from app.config import Settings, get_settings
from app.crypto import secret_box
from app.dashboard import endpoints as dashboard_endpoints
from app.db import make_engine, make_sessionmaker, writer
from app.errors import DatabaseUnavailable, ErrorBody, install_error_handlers
from app.http import JSONResponse
from app.ingestion import client_settings
from app.ingestion import endpoints as ingestion_endpoints
from app.ingestion.parsing import is_crawler
from app.ingestion.pipeline import IngestPipeline
from app.ingestion.schemas import ingestion_openapi_schemas
from app.leads import endpoints as leads_endpoints
from app.metrics import ObservedRequests
from app.openapi import document, package_version
from app.privacy import endpoints as privacy_endpoints
from app.scoring import endpoints as scoring_endpoints
from app.scoring.rule_set_schema import rule_set_openapi_schemas
from app.scoring.scorer import LeadScorer, RuleSetCache
from app.sites import endpoints as sites_endpoints
from app.sites import routing_endpoints, team_endpoints
from app.sites.service import WriteKeyCache
from app.webhooks import endpoints as webhooks_endpoints
from app.webhooks.outbox import notifier_for
from app.webhooks.schemas import WEBHOOK_EVENTS
from app.worker import BackgroundRunner, lead_change_consumers


class Live(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]


# Module-level handlers, not closures in create_app: FastAPI caches what it learns about each
# endpoint callable (a bounded LRU keyed by the callable), and a closure would keep its whole
# app alive there, for every app a process ever builds (the test suite builds hundreds).
health_router = APIRouter(tags=["ops"])
NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {
        "model": ErrorBody,
        "description": "The database is not answering in time (Retry-After).",
    }
}


@health_router.get("/health/live", response_model=Live)
async def health_live() -> dict[str, str]:
    """The process is up and serving (never touches the database)."""
    return {"status": "ok"}


@health_router.get("/health/ready", response_model=Ready, responses=NOT_READY)
@health_router.get("/health", response_model=Ready, responses=NOT_READY)
async def health_ready(request: Request) -> dict[str, str]:
    """Ready to serve: the database answers `SELECT 1` in time (else 503)."""
    state = request.app.state
    try:
        async with asyncio.timeout(state.settings.http.health_timeout_seconds):
            async with state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as exc:
        message = f"The database is not answering ({type(exc).__name__})."
        raise DatabaseUnavailable(message) from exc
    return {"status": "ok", "database": "ok"}


def create_served_app() -> FastAPI:
    """The app as `leadheat serve` runs it: one per server process, whose garbage collector
    is tuned for the server once the app has started (see `tune_gc`)."""
    return create_app(tune_collector=True)


def tune_gc() -> None:
    """Set a server process's garbage collector for ingestion's allocation pattern.

    With CPython's defaults the cyclic collector takes a large share of a worker's CPU under
    batch load (docs/performance.md): a group's events stay alive for the few milliseconds of
    their group commit, so most of them outlive a young collection (every 700 allocations)
    and are walked again by the older generations' collections, each of which also walks
    everything the process built at startup (modules, the app, compiled rule sets). Here,
    what exists after startup is frozen out of the collector's sight (`gc.freeze`), and young
    collections run every 50,000 allocations. Cycles are still collected; they are only
    looked for less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def create_app(settings: Settings | None = None, *, tune_collector: bool = False) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings)
        sessionmaker = make_sessionmaker(engine)
        app.state.settings = settings
        app.state.secret_box = secret_box(settings)  # PostgreSQL without a key: refuses
        app.state.engine = engine
        app.state.sessionmaker = sessionmaker
        app.state.write_sessionmaker = make_sessionmaker(writer(engine))
        app.state.write_keys = WriteKeyCache(
            sessionmaker, settings.ingestion.write_key_cache_seconds
        )
        is_crawler("warm-up")  # compiles the crawler patterns now, not on the first request
        rule_sets = RuleSetCache(settings.scoring.rule_set_cache_seconds)
        app.state.rule_sets = rule_sets
        scorer = (
            # Audiences' time conditions are folded into each lead's due time as it is scored.
            DueTimes(
                LeadScorer(rule_sets, timedelta(minutes=settings.ingestion.visit_timeout_minutes))
            )
            if settings.scoring.enabled
            else None
        )
        notifier = notifier_for(engine)  # the webhook loops are woken right after each commit
        lead_changes, memberships = lead_change_consumers(settings.webhooks, rule_sets)
        app.state.lead_changes = lead_changes
        pipeline = IngestPipeline(
            writer(engine),
            settings.ingestion,
            scorer=scorer,
            after_group=[lead_changes],
            after_commit=[notifier.wake_committed],
        )
        app.state.ingest_pipeline = pipeline
        app.state.database_gauges = monitoring.DatabaseGauges(
            engine, settings.metrics.database_cache_seconds
        )
        pipeline.start()
        # Background work reads then writes: writer sessions.
        background = BackgroundRunner(
            BackgroundContext(
                settings,
                engine,
                app.state.write_sessionmaker,
                rule_sets,
                lead_changes=lead_changes,
                memberships=memberships,
            )
        )
        if settings.run_background:
            background.start()
        app.state.background = background
        if tune_collector:
            tune_gc()
        try:
            yield
        finally:
            await background.stop()
            await pipeline.stop()
            await engine.dispose()

    app = FastAPI(
        title="Leadheat",
        version=package_version(),
        summary="Which visitors are about to buy, and a first contact within five minutes.",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        # Leadheat serves /docs and /redoc itself, with no CDN (app/dashboard/api_docs.py).
        docs_url=None,
        redoc_url=None,
        # FastAPI's native OpenTelemetry is off: Leadheat exports none, and FastAPI looks up
        # OpenTelemetry's global providers on every request to find out.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    # Ingestion, by far the hottest path: its routes go straight into the app's route table,
    # first (matched before FastAPI's docs routes and without an included router's lookup),
    # and their POSTs are handed to them ahead of the routing (PostsFirst). Starlette builds
    # the middleware stack when the app first runs: PostsFirst then reads the handlers from
    # `exception_handlers` as Starlette's own ExceptionMiddleware does, every one included.
    app.router.routes[:0] = ingestion_endpoints.router.routes
    app.add_middleware(
        ingestion_endpoints.PostsFirst,
        routes=app.router.routes,
        handlers=app.exception_handlers,
    )
    install_error_handlers(app)  # after: CatchAllMiddleware is outside PostsFirst
    # Outermost: the request id is set before anything logs, and every answer is timed.
    app.add_middleware(ObservedRequests, access_log=settings.access_log)
    app.include_router(webhooks_endpoints.router)
    app.include_router(dashboard_endpoints.router)
    app.include_router(scoring_endpoints.router)
    app.include_router(leads_endpoints.router)
    app.include_router(leads_endpoints.stats_router)
    app.include_router(sites_endpoints.router)
    app.include_router(client_settings.router)
    if settings.metrics.enabled:
        app.include_router(monitoring.router)
    app.include_router(privacy_endpoints.router)
    app.include_router(audiences_endpoints.router)
    app.include_router(audiences_endpoints.csv_router)
    app.include_router(team_endpoints.users_router)
    app.include_router(team_endpoints.me_router)
    app.include_router(team_endpoints.session_router)
    app.include_router(channel_endpoints.channels_router)
    app.include_router(channel_endpoints.me_channels_router)
    app.include_router(channel_endpoints.telegram_router)
    app.include_router(channel_endpoints.actions_router)
    app.include_router(health_router)
    app.include_router(routing_endpoints.settings_router)
    app.include_router(routing_endpoints.rules_router)
    # The rule set is read by its routes themselves (its own error details): its schema, and
    # the webhooks' payloads, are added to what FastAPI documents.
    app.openapi = lambda: document(  # type: ignore[method-assign]
        app,
        schemas={**ingestion_openapi_schemas(), **rule_set_openapi_schemas()},
        webhooks=WEBHOOK_EVENTS,
    )

    return app
