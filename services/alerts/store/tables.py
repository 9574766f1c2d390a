"""Alerts' tables, defined once on one `MetaData` (gathered by services/schema.py for alembic).

Time columns that drive behaviour (due times, leases, snoozes, escalations) are written and
compared with the injected clock's `now`, never the database's, so tests can move time.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

TS = DateTime(timezone=True)
Row = dict[str, Any]

metadata = MetaData()
account_contacts = Table(
    "account_contacts",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("account_name", Text),
    Column("csm_email", Text),
    Column("csm_slack_channel", Text),
    Column("traits", JSONB, nullable=False),
    Column("updated_at", TS, nullable=False, server_default=func.now()),
)
alerts = Table(
    "alerts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("dedupe_key", Text, nullable=False, unique=True),  # the occurrence that opened it
    Column("account_id", Text, nullable=False),
    Column("signal_type", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("segment", Text),
    Column("summary", Text, nullable=False),
    Column("signal_event_id", Text, nullable=False),
    Column("signal", JSONB, nullable=False),  # the newest raised occurrence
    Column("occurred_at", TS, nullable=False),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    Column("state", Text, nullable=False),
    Column("occurrences", Integer, nullable=False),
    Column("last_dedupe_key", Text),
    Column("last_signal_at", TS, nullable=False),
    Column("opened_at", TS, nullable=False),
    Column("updated_at", TS),
    Column("acknowledged_at", TS),
    Column("acknowledged_by", Text),
    Column("snoozed_until", TS),
    Column("snooze_reason", Text),
    Column("snoozed_by", Text),
    Column("resolved_at", TS),
    Column("resolved_reason", Text),
    Column("resolved_by", Text),
    Column("clearing_since", TS),
    Column("notified_severity", Text),
    Column("last_notified_at", TS),
    Column("escalate_at", TS),
    Column("escalated_at", TS),
    Column("reopened_count", Integer, nullable=False),
    Index("ix_alerts_account", "account_id", "id"),
    Index("ix_alerts_timers", "state", postgresql_where=text("state <> 'resolved'")),
    Index("ix_alerts_last_resolved", "account_id", "kind", "resolved_at",
          postgresql_where=text("state = 'resolved'")),
    # At most one alert per account and kind (risk or expansion) is not resolved.
    Index("uq_alerts_one_open", "account_id", "kind", unique=True,
          postgresql_where=text("state <> 'resolved'")),
)
# One row per signal type raised in an alert's episode: the reasons the alert lists.
alert_reasons = Table(
    "alert_reasons",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("alert_id", BigInteger, ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    Column("signal_type", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("severity", Text, nullable=False),  # its worst occurrence while active
    Column("summary", Text, nullable=False),
    Column("signal", JSONB, nullable=False),  # its newest raised occurrence
    Column("state", Text, nullable=False),  # active | cleared
    Column("occurrences", Integer, nullable=False),
    Column("first_signal_at", TS, nullable=False),  # event time
    Column("last_signal_at", TS, nullable=False),  # event time of the newest raise
    Column("clearing_since", TS),
    Column("cleared_at", TS),
    Column("updated_at", TS, nullable=False),
    UniqueConstraint("alert_id", "signal_type", name="uq_alert_reason"),
    CheckConstraint("state IN ('active', 'cleared')", name="ck_alert_reason_state"),
    Index(
        "ix_alert_reasons_clearing",
        "clearing_since",
        postgresql_where=text("state = 'active' AND clearing_since IS NOT NULL"),
    ),
)
alert_signals = Table(
    "alert_signals",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("dedupe_key", Text, nullable=False, unique=True),
    Column("alert_id", BigInteger, ForeignKey("alerts.id")),
    Column("account_id", Text, nullable=False),
    Column("signal_type", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("occurred_at", TS, nullable=False),
    Column("received_at", TS, nullable=False),
    Column("signal", JSONB, nullable=False),
    Column("outcome", Text, nullable=False),
    Index("ix_alert_signals_alert", "alert_id", "id"),
)
alert_digests = Table(
    "alert_digests",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("recipient", Text, nullable=False),
    Column("digest_date", Date, nullable=False),
    Column("timezone", Text, nullable=False),
    Column("covers_until", TS, nullable=False),
    Column("items", Integer, nullable=False),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("recipient", "digest_date", name="uq_digest_per_day"),
)
alert_digest_items = Table(
    "alert_digest_items",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("recipient", Text, nullable=False),
    Column("alert_id", BigInteger, ForeignKey("alerts.id"), nullable=False),
    Column("signal_id", BigInteger, ForeignKey("alert_signals.id"), nullable=False),
    Column("reason", Text, nullable=False),
    Column("targets", JSONB, nullable=False),
    Column("timezone", Text, nullable=False),
    Column("digest_time", Text, nullable=False),
    Column("added_at", TS, nullable=False),
    Column("digest_id", BigInteger, ForeignKey("alert_digests.id")),
    UniqueConstraint("recipient", "signal_id", name="uq_digest_item"),
    Index("ix_digest_items_pending", "recipient", postgresql_where=text("digest_id IS NULL")),
)
alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("alert_id", BigInteger, ForeignKey("alerts.id")),
    Column("digest_id", BigInteger, ForeignKey("alert_digests.id")),
    Column("purpose", Text, nullable=False),
    Column("delivery_key", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("mention", Text),
    Column("details", JSONB, nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", TS, nullable=False),
    Column("pacing_key", Text),
    Column("claimed_at", TS),
    Column("send_started_at", TS),
    Column("in_doubt", Boolean, nullable=False),
    Column("last_status_code", Integer),
    Column("last_response", Text),
    Column("external_id", Text),
    Column("external_channel", Text),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    Column("sent_at", TS),
    Index("ix_alert_deliveries_due", "status", "next_attempt_at"),
    Index("ix_alert_deliveries_alert", "alert_id"),
    UniqueConstraint("delivery_key", name="uq_delivery_key"),
)
alert_delivery_attempts = Table(
    "alert_delivery_attempts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("delivery_id", BigInteger, ForeignKey("alert_deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("claimed_at", TS),
    Column("started_at", TS),
    Column("finished_at", TS, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("status_code", Integer),
    Column("response", Text),
    Column("in_doubt", Boolean, nullable=False),
    UniqueConstraint("delivery_id", "attempt", name="uq_delivery_attempt"),
)
alert_actions = Table(
    "alert_actions",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("alert_id", BigInteger, ForeignKey("alerts.id"), nullable=False),
    Column("action", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("via", Text, nullable=False),
    Column("details", JSONB, nullable=False),
    Column("at", TS, nullable=False),
    Index("ix_alert_actions_alert", "alert_id", "id"),
)
alert_feedback = Table(
    "alert_feedback",
    metadata,
    Column("alert_id", BigInteger, ForeignKey("alerts.id"), primary_key=True),
    Column("actor", Text, primary_key=True),
    Column("signal_type", Text, nullable=False),
    Column("useful", Boolean, nullable=False),
    Column("comment", Text),
    Column("at", TS, nullable=False),
)
recipient_preferences = Table(
    "recipient_preferences",
    metadata,
    Column("recipient", Text, primary_key=True),
    Column("preferences", JSONB, nullable=False),
    Column("updated_by", Text),
    Column("updated_at", TS, nullable=False),
)
alert_pacing = Table(
    "alert_pacing",
    metadata,
    Column("pacing_key", Text, primary_key=True),
    Column("next_free_at", TS, nullable=False),
)
alert_link_secret = Table(
    "alert_link_secret",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("secret", Text, nullable=False),
)
