"""One settings object for every service, read from `CHURNWATCH_*` environment variables.

The names and defaults here are a public contract: the README lists each of them, and
docker-compose and the local stack set them. Add an option here, then document it.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHURNWATCH_", extra="ignore")

    # --- infrastructure -----------------------------------------------------------------
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/churnwatch"
    topic_prefix: str = "churnwatch."
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)

    # --- HTTP ports (one per service, so they can share a host) -------------------------
    http_host: str = "127.0.0.1"
    ingest_port: int = 8081
    scoring_port: int = 8082
    alerts_port: int = 8083
    surveys_port: int = 8084

    # --- behaviour ----------------------------------------------------------------------
    bootstrap_write_key: SecretStr | None = None
    bootstrap_write_key_source: str = "bootstrap"
    produce_timeout_seconds: float = Field(default=10.0, gt=0)
    max_in_flight_events: int = Field(default=50_000, gt=0)
    max_request_bytes: int = Field(default=512_000, gt=0)
    max_event_bytes: int = Field(default=32_000, gt=0)
    max_batch_items: int = Field(default=2_500, gt=0)
    # ingest robustness: messageId dedupe window, per-source rate limit, write-key admin API
    message_id_retention_hours: float = Field(default=48.0, gt=0)
    rate_limit_events_per_second: float = Field(default=20_000.0, gt=0)
    rate_limit_burst: int = Field(default=100_000, gt=0)
    admin_token: SecretStr | None = None
    consumer_max_batch: int = Field(default=500, gt=0)
    dedupe_retention_hours: float = Field(default=168.0, gt=0)
    # help-desk webhooks: a webhook whose secret is unset answers 404
    zendesk_webhook_secret: SecretStr | None = None
    intercom_webhook_secret: SecretStr | None = None
    tickets_webhook_secret: SecretStr | None = None
    webhook_max_age_seconds: int = Field(default=300, gt=0)
    ticket_account_mappings: str | None = None

    # --- scoring: scorecard, event time, overrides, replay --------------------------------
    scoring_scorecard_path: str | None = None  # None: services/scoring/scorecards/default.yaml
    scoring_lateness_seconds: float = Field(default=600.0, ge=0, le=7 * 86_400)
    scoring_consumer_max_batch: int = Field(default=2_000, gt=0)
    scoring_override_token: SecretStr | None = None
    scoring_input_retention_days: float = Field(default=400.0, ge=0)

    # --- alerts: the outside world ------------------------------------------------------
    slack_webhook_url: str | None = None
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_use_tls: bool = False
    email_from: str = "churnwatch@localhost"
    alert_default_email: str | None = None
    public_url: str = "http://127.0.0.1:8082"
    delivery_max_attempts: int = Field(default=8, ge=1)
    delivery_poll_seconds: float = Field(default=0.5, gt=0)

    # --- logs ---------------------------------------------------------------------------
    log_level: str = "INFO"
    log_format: str = Field(default="console", pattern="^(console|json)$")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
