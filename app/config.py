"""Configuration: one settings class, read from `LEADHEAT_*` environment variables.

Nested groups use a double underscore, e.g. `LEADHEAT_INGESTION__VISIT_TIMEOUT_MINUTES=45`.
Every industry figure from DOMAIN.md that the service uses is a setting here, never a constant.
"""

from functools import lru_cache

from pydantic import BaseModel, Field
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
    rescore_poll_seconds: float = Field(1.0, description="how often idle workers look for jobs")
    refresh_interval_seconds: float = Field(
        30.0, description="warm/hot leads re-evaluated this often (decay, expired holds)"
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
    log_level: str = "info"
    ingestion: IngestionSettings = IngestionSettings()
    scoring: ScoringSettings = ScoringSettings()

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
