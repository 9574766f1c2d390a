"""One settings object for every service, read from `CHURNWATCH_*` environment variables.

The names and defaults here are a public contract: docs/configuration.md lists each of them, and
docker-compose and the local stack set them. Add an option here, then document it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.door import EventTimeWindow


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHURNWATCH_", extra="ignore")

    # --- infrastructure -----------------------------------------------------------------
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/churnwatch"
    topic_prefix: str = "churnwatch."
    # Kafka's consumer groups are cluster-wide: deployments (or test runs) that share a cluster
    # through different topic prefixes need different group ids too, or they rebalance each other.
    consumer_group_prefix: str | None = None
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)

    # --- HTTP ports (one per service, so they can share a host) -------------------------
    http_host: str = "127.0.0.1"
    ingest_port: int = 8081
    scoring_port: int = 8082
    alerts_port: int = 8083
    surveys_port: int = 8084
    console_port: int = 8085

    # --- behaviour ----------------------------------------------------------------------
    bootstrap_write_key: SecretStr | None = None
    bootstrap_write_key_source: str = "bootstrap"
    # An API token seeded at start with scope `admin` (`make run`'s development token); the
    # console's service token can be this one. Unset: tokens come from `churnwatch tokens create`.
    bootstrap_api_token: SecretStr | None = None
    produce_timeout_seconds: float = Field(default=10.0, gt=0)
    max_in_flight_events: int = Field(default=50_000, gt=0)
    # Segment's "500 KB per batch" and "32 KB per event", counted as its clients count them
    # (analytics-python: MAX_MSG_SIZE = 32 << 10; batches cut at 475,000 bytes of items, so
    # at most 475,000 + one 32 KB event + the wrapper, under 500 << 10): an event a client
    # accepts is never refused here.
    max_request_bytes: int = Field(default=500 << 10, gt=0)
    max_event_bytes: int = Field(default=32 << 10, gt=0)
    max_batch_items: int = Field(default=2_500, gt=0)
    # ingest robustness: messageId dedupe window, per-write-key rate limit (shared by every
    # instance), write-key and ticket-mapping admin API, request bodies held in memory
    message_id_retention_hours: float = Field(default=48.0, gt=0)
    message_id_prune_interval_seconds: float = Field(default=300.0, gt=0)
    # A messageId whose publish failed with its record still held by the producer is "in doubt"
    # until the producer reports the outcome; if no outcome is recorded this long (the instance
    # died), a retry may claim it again.
    message_id_in_doubt_seconds: float = Field(default=3600.0, gt=0)
    rate_limit_events_per_second: float = Field(default=20_000.0, gt=0)
    rate_limit_burst: int = Field(default=100_000, gt=0)
    admin_token: SecretStr | None = None
    max_request_bytes_in_memory: int = Field(default=50_000_000, gt=0)
    # The event-time window (shared.door): an event saying it happened more than this long
    # before, or after, it was received is refused with a 400 and dead-lettered by consumers.
    max_event_age_days: float = Field(default=1826.0, gt=0)
    max_event_future_hours: float = Field(default=24.0, gt=0)
    consumer_max_batch: int = Field(default=500, gt=0)
    dedupe_retention_hours: float = Field(default=168.0, gt=0)
    # Consumers (issue 17): an envelope larger than this, or of a type that does not belong on
    # its topic, is dead-lettered at decode (ingest caps events at max_event_bytes; 64 KiB leaves
    # room for the envelope around a 32 KB event).
    consumer_max_envelope_bytes: int = Field(default=64 << 10, gt=0)
    # Bounded dead-lettering (like arroyo's DlqLimit), per partition: a consumer stops, rather
    # than drain a topic into the dead-letter topic, once more than max_ratio x window of a
    # partition's last `window` offsets were dead-lettered, or more than max_consecutive in a row.
    consumer_dead_letter_max_ratio: float = Field(default=0.05, ge=0, le=1)
    consumer_dead_letter_ratio_window: int = Field(default=10_000, gt=0)
    consumer_dead_letter_max_consecutive: int = Field(default=100, gt=0)
    # help-desk webhooks: a webhook whose secret is unset answers 404
    zendesk_webhook_secret: SecretStr | None = None
    intercom_webhook_secret: SecretStr | None = None
    tickets_webhook_secret: SecretStr | None = None
    webhook_max_age_seconds: int = Field(default=300, gt=0)
    ticket_account_mappings: str | None = None

    # --- scoring: scorecard, event time, overrides, replay --------------------------------
    scoring_scorecard_path: str | None = None  # None: services/scoring/scorecards/default.yaml
    scoring_lateness_seconds: float = Field(default=600.0, ge=0, le=7 * 86_400)
    scoring_consumer_max_batch: int = Field(default=10_000, gt=0)
    scoring_override_token: SecretStr | None = None
    scoring_input_retention_days: float = Field(default=400.0, ge=0)
    # Churn risk (issue 18): each account's features are snapshotted on this grid of event time
    # (from a Monday 00:00 UTC), for `churnwatch calibrate`. 0 turns snapshots off.
    scoring_snapshot_every_days: float = Field(default=7.0, ge=0, le=366)
    # How often live scoring looks for a new activation (or rollback) of a churn-risk model.
    scoring_model_poll_seconds: float = Field(default=10.0, gt=0, le=3_600)

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
    # --- alerts (issue 5): routing file, lifecycle API and links, Slack Web API, pacing ---
    alerts_routing_file: str | None = None
    alerts_public_url: str = "http://127.0.0.1:8083"
    alerts_api_token: SecretStr | None = None
    alerts_link_secret: SecretStr | None = None
    alerts_link_ttl_hours: float = Field(default=336.0, gt=0)
    alerts_tick_seconds: float = Field(default=15.0, gt=0)
    slack_bot_token: SecretStr | None = None
    # The Slack app (issue 13): with a bot token the Web API carries every Slack message; the
    # signing secret turns on /v1/slack/interactions and /v1/slack/commands.
    slack_api_base_url: str = "https://slack.com/api/"
    slack_signing_secret: SecretStr | None = None
    # /churnwatch <account> reads the account's health from scoring with this token (scope
    # read:health or admin); unset: the bootstrap token.
    alerts_scoring_url: str = "http://127.0.0.1:8082"
    alerts_scoring_token: SecretStr | None = None
    slack_min_interval_seconds: float = Field(default=1.0, ge=0)
    delivery_timeout_seconds: float = Field(default=10.0, gt=0)
    delivery_lease_seconds: float = Field(default=60.0, gt=0)

    # --- surveys: invitations, response pages, survey-tool webhooks, insight --------------
    # Base URL of the links in survey invitations (the public response pages of surveys).
    surveys_public_url: str = "http://127.0.0.1:8084"
    # Signs invitation and unsubscribe links; unset: surveys sends no invitations.
    survey_link_secret: SecretStr | None = None
    survey_link_ttl_days: float = Field(default=14.0, gt=0)
    # No contact is invited more than once in this period, across all surveys.
    survey_quiet_period_days: float = Field(default=30.0, ge=0)
    survey_schedule_seconds: float = Field(default=300.0, gt=0)
    survey_max_invitations_per_run: int = Field(default=500, gt=0)
    survey_send_poll_seconds: float = Field(default=2.0, gt=0)
    survey_send_max_attempts: int = Field(default=6, ge=1)
    # A ticket solved longer ago than this (a replay, a backlog) gets no CSAT invitation.
    survey_ticket_max_age_hours: float = Field(default=72.0, gt=0)
    survey_email_from: str | None = None
    survey_arr_tiers: str = "low_touch:0,mid_touch:25000,high_touch:100000"
    delighted_webhook_secret: SecretStr | None = None
    typeform_webhook_secret: SecretStr | None = None

    # --- console (issue 14): the CSMs' web workspace --------------------------------------
    # As browsers reach it; https here makes its session cookie Secure.
    console_public_url: str = "http://127.0.0.1:8085"
    console_scoring_url: str = "http://127.0.0.1:8082"
    console_alerts_url: str = "http://127.0.0.1:8083"
    # The console's service token (read:health and read:alerts at least); unset: the bootstrap API token.
    console_api_token: SecretStr | None = None
    console_session_hours: float = Field(default=12.0, gt=0)
    # Failed sign-ins allowed per email, and per client address, in a 15-minute window.
    console_sign_in_attempts: int = Field(default=5, ge=1)

    # --- logs ---------------------------------------------------------------------------
    log_level: str = "INFO"
    log_format: str = Field(default="console", pattern="^(console|json)$")


    @field_validator("*", mode="before")
    @classmethod
    def _empty_means_unset(cls, value: Any, info: ValidationInfo) -> Any:
        # docker-compose passes `VAR=` for a variable nobody set: for an optional setting
        # (default None) an empty value means "not set", never an empty secret or URL.
        if value == "" and info.field_name is not None and cls.model_fields[info.field_name].default is None:
            return None
        return value

@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def event_time_window(settings: Settings) -> EventTimeWindow:
    return EventTimeWindow.of(settings.max_event_age_days, settings.max_event_future_hours)
