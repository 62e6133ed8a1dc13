"""Configuration: one settings class, read from `LEADHEAT_*` environment variables.

Nested groups use a double underscore, e.g. `LEADHEAT_INGESTION__VISIT_TIMEOUT_MINUTES=45`.
Every industry figure the service uses (docs/domain.md) is a setting here, never a constant.
"""

import os
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class IngestionSettings(BaseModel):
    max_event_bytes: int = Field(32 * 1024, description="Segment's per-event limit")
    max_request_bytes: int = Field(500 * 1024, description="Segment's per-request limit")
    max_batch_events: int = Field(2500, description="events in one /v1/batch call")
    visit_timeout_minutes: float = Field(30, description="silence that starts a new visit")
    store_bot_events: bool = Field(True, description="keep crawler events (never scored)")
    group_commit_max_events: int = Field(2000, description="events in one group transaction")
    flushers: int = Field(2, description="concurrent group transactions (PostgreSQL)")
    write_key_cache_seconds: float = 30.0


class ScoringSettings(BaseModel):
    enabled: bool = Field(True, description="score leads at ingestion (off: for benchmarks)")
    rule_set_cache_seconds: float = Field(5.0, description="how soon replicas see a new version")
    rescore_sync_max_leads: int = Field(
        2000, description="publishing re-scores this many leads before answering; more: a job"
    )
    rescore_batch_leads: int = Field(200, description="leads per re-scoring transaction")
    rescore_lease_seconds: float = Field(60.0, description="a silent worker's job is taken over")
    rescore_poll_seconds: float = Field(
        15.0,
        description="how often idle workers look for jobs (re-scoring, previews, audiences): a"
        " fallback, a new job wakes them at once",
    )
    preview_sync_max_leads: int = Field(
        2000, description="POST /v1/rules/preview answers at once up to this many; more: a job"
    )
    preview_processes: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        description="processes a preview job replays in (0: in the worker's own event loop)",
    )
    rescore_processes: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        description="processes a re-scoring job replays in, one id range each (0: in the"
        " worker's own event loop)",
    )
    rescore_pause_seconds: float = Field(
        0.0,
        description="a re-scoring job's process rests this long between batches (0: not at"
        " all; the jobs' niceness already gives ingestion the cores first)",
    )
    job_process_niceness: int = Field(
        19,
        description="how much lower the priority of job processes is (os.nice), so that"
        " ingestion wins the CPU while a preview or re-scoring job runs",
    )
    preview_job_keep_hours: float = Field(
        24.0, description="finished preview jobs are deleted this long after they finished"
    )
    refresh_interval_seconds: float = Field(
        30.0,
        description="the refresher looks this often for leads whose next change came (decay,"
        " holds ending): a lead shows its change at most this late",
    )
    refresh_lease_seconds: float = Field(
        120.0, description="one process runs the refresher; a silent one's turn passes after this"
    )


class WebhookSettings(BaseModel):
    first_contact_window_minutes: float = Field(5, description="hot -> first contact due by")
    escalation_marks_minutes: list[float] = Field(
        [10, 15, 30],
        description="speed to lead's marks (with the window): the share contacted within each",
    )
    cart_abandoned_after_minutes: float = Field(60, description="cart silence: cart.abandoned")
    cart_follow_up_days: list[float] = Field(
        [1, 3, 7], description="cart.follow_up delays after abandonment (at most three)"
    )
    retry_schedule_seconds: list[float] = Field(
        [5, 300, 1800, 7200, 18000, 36000], description="waits after the first attempt fails"
    )
    retry_jitter: float = Field(0.1, description="each wait is +- this share, at random")
    attempt_timeout_seconds: float = Field(15, description="one delivery attempt's timeout")
    disable_after_failures: int = Field(
        15, description="an endpoint is disabled after at least this many failures in a row..."
    )
    disable_after_failing_hours: float = Field(
        72, description="...that have gone on, without a success, for at least this long"
    )
    rotation_grace_hours: float = Field(24, description="the old secret still signs this long")
    allow_private_networks: bool = Field(
        False, description="deliver to loopback/private addresses (local development, tests)"
    )
    max_payload_bytes: int = Field(64 * 1024, description="larger payloads drop cart details")
    response_body_bytes: int = Field(2048, description="kept of each response, in the log")
    poll_seconds: float = Field(
        15.0,
        description="outbox and timers poll, a fallback: commits wake the loops at once, and"
        " they sleep until the next retry or timer is due",
    )
    concurrency: int = Field(64, description="delivery attempts in flight per process")
    lease_seconds: float = Field(60, description="a dead worker's claimed attempts come back")


class HttpSettings(BaseModel):
    header_timeout_seconds: float = Field(
        5.0, description="a request's headers must arrive within this, else the connection closes"
    )
    body_timeout_seconds: float = Field(
        30.0, description="a request's body must arrive within this after its headers, else 408"
    )
    health_timeout_seconds: float = Field(
        2.0, description="/health/ready's SELECT 1 must answer within this, else 503"
    )


class StatsSettings(BaseModel):
    rollup_interval_seconds: float = Field(
        60.0,
        description="how often the funnel's rollup counts the days changed since (the funnel is "
        "exact at any time: a changed day is read from the leads until then)",
    )


class MetricsSettings(BaseModel):
    enabled: bool = Field(True, description="serve Prometheus metrics at GET /metrics")
    token: SecretStr | None = Field(
        None,
        description="if set, /metrics requires `Authorization: Bearer <token>` (else it is open,"
        " like most exporters: keep it off the public internet)",
    )
    database_cache_seconds: float = Field(
        15.0,
        description="the gauges read from the database (leads by temperature, overdue first"
        " contacts, the outbox) are read at most this often per process",
    )
    worker_port: int | None = Field(
        None, description="`leadheat worker` serves its own /metrics on this port (off if unset)"
    )
    worker_host: str = Field("127.0.0.1", description="the address of the worker's /metrics")


class PrivacySettings(BaseModel):
    event_retention_days: float | None = Field(
        None,
        gt=0,
        description="events stored longer ago than this are pruned (None: kept; lead profiles"
        " and scores stay either way)",
    )
    retention_interval_seconds: float = Field(
        3600.0, description="how often the retention loop looks for events to prune"
    )
    retention_batch_events: int = Field(
        1000, ge=1, description="events deleted per retention transaction (short locks)"
    )
    retention_lease_seconds: float = Field(
        600.0, description="one process prunes; a silent one's turn passes after this"
    )
    consent_categories: list[str] = Field(
        [],
        description="consent categories Leadheat needs: an event that refuses any of them is"
        " not stored (empty: refused when the event's consent grants no category at all)",
    )


class SmtpSettings(BaseModel):
    host: str | None = Field(None, description="the SMTP server (unset: no email channel)")
    port: int = Field(587, description="587 with STARTTLS, 465 with implicit TLS, 25 plain")
    username: str | None = None
    password: SecretStr | None = None
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="starttls: upgrade after connecting; tls: TLS from the start"
    )
    from_address: str = Field("leadheat@localhost", description="the From of alert emails")
    timeout_seconds: float = Field(15, description="one sending attempt's timeout")


class ChannelSettings(BaseModel):
    lead_url: str = Field(
        "{public_url}/dashboard?lead={lead_id}",
        description="the link to a lead in messages ({public_url} and {lead_id} are filled in)",
    )
    action_link_hours: float = Field(
        24, description="one-click links (claim, contacted) in messages expire after this"
    )
    link_code_minutes: float = Field(
        30, description="a Telegram deep-link code must be used within this"
    )
    telegram_timeout_seconds: float = Field(15, description="one Bot API call's timeout")
    telegram_poll_seconds: float = Field(
        25, description="long polling (getUpdates): how long one call waits for updates"
    )
    telegram_poll_lease_seconds: float = Field(
        90, description="one process polls; a silent one's turn passes after this"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LEADHEAT_", env_nested_delimiter="__", extra="ignore"
    )

    database_url: str = "sqlite+aiosqlite:///./leadheat.db"
    database_pool_size: int = 10
    database_echo: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    auto_migrate: bool = Field(True, description="`leadheat serve` migrates before it listens")
    run_background: bool = Field(
        True, description="run background work (delivery, timers, re-scoring) inside serve"
    )
    create_demo_site: bool = Field(True, description="create a demo site when there is none")
    log_level: str = Field("info", description="debug also logs every group commit")
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="json: one JSON object a line; auto: text on a terminal, else json"
    )
    access_log: bool = Field(
        False, description="log a line per HTTP request (off: ingestion's throughput, see docs)"
    )
    secrets_key: SecretStr | None = Field(
        None,
        description="Fernet key(s), comma separated, encrypting webhook secrets (see app.crypto)",
    )
    public_url: str | None = Field(
        None,
        description="this service's address as people and Telegram reach it (https://...): the"
        " base of links in messages and of the Telegram webhook",
    )
    telegram_api_base: str = Field(
        "https://api.telegram.org", description="the Telegram Bot API (a local fake in tests)"
    )
    ingestion: IngestionSettings = IngestionSettings()
    scoring: ScoringSettings = ScoringSettings()
    webhooks: WebhookSettings = WebhookSettings()
    http: HttpSettings = HttpSettings()
    stats: StatsSettings = StatsSettings()
    metrics: MetricsSettings = MetricsSettings()
    privacy: PrivacySettings = PrivacySettings()
    smtp: SmtpSettings = SmtpSettings()
    channels: ChannelSettings = ChannelSettings()

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
