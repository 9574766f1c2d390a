"""Alerts: one open alert per (account, signal type) with a lifecycle, the signal ledger,
delivery purposes and the idempotent delivery ledger, digests, actions, feedback,
recipient preferences and Slack pacing.

Revision ID: 0003_alerts
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0003_alerts"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # --- alerts: the lifecycle ------------------------------------------------------------------
    column: sa.Column[Any]
    for column in (
        sa.Column("state", sa.Text, nullable=False, server_default="open"),
        sa.Column("kind", sa.Text, nullable=False, server_default="risk"),
        sa.Column("segment", sa.Text),
        sa.Column("occurrences", sa.Integer, nullable=False, server_default="1"),
        sa.Column("last_dedupe_key", sa.Text),
        sa.Column("last_signal_at", TS),
        sa.Column("opened_at", TS),
        sa.Column("updated_at", TS),
        sa.Column("acknowledged_at", TS),
        sa.Column("acknowledged_by", sa.Text),
        sa.Column("snoozed_until", TS),
        sa.Column("snooze_reason", sa.Text),
        sa.Column("snoozed_by", sa.Text),
        sa.Column("resolved_at", TS),
        sa.Column("resolved_reason", sa.Text),
        sa.Column("resolved_by", sa.Text),
        sa.Column("clearing_since", TS),
        sa.Column("notified_severity", sa.Text),
        sa.Column("last_notified_at", TS),
        sa.Column("escalate_at", TS),
        sa.Column("escalated_at", TS),
        sa.Column("reopened_count", sa.Integer, nullable=False, server_default="0"),
    ):
        op.add_column("alerts", column)
    # Alerts from before the lifecycle: the newest per account and type stays open.
    op.execute("""
        UPDATE alerts SET last_dedupe_key = dedupe_key, last_signal_at = occurred_at,
               opened_at = created_at, updated_at = created_at,
               notified_severity = severity, last_notified_at = created_at
    """)
    op.execute("""
        UPDATE alerts a SET state = 'resolved', resolved_at = now(), resolved_reason = 'superseded'
        WHERE EXISTS (SELECT 1 FROM alerts b WHERE b.account_id = a.account_id
                      AND b.signal_type = a.signal_type AND b.id > a.id)
    """)
    op.alter_column("alerts", "last_signal_at", nullable=False)
    op.alter_column("alerts", "opened_at", nullable=False)
    op.create_check_constraint(
        "ck_alert_state", "alerts", "state IN ('open', 'acknowledged', 'snoozed', 'resolved')"
    )
    op.create_index(
        "uq_alerts_one_open",
        "alerts",
        ["account_id", "signal_type"],
        unique=True,
        postgresql_where=sa.text("state <> 'resolved'"),
    )
    op.create_index(
        "ix_alerts_last_resolved",
        "alerts",
        ["account_id", "signal_type", "resolved_at"],
        postgresql_where=sa.text("state = 'resolved'"),
    )
    op.create_index("ix_alerts_timers", "alerts", ["state"], postgresql_where=sa.text("state <> 'resolved'"))

    # --- every signal occurrence seen (the dedupe ledger) -------------------------------------
    op.create_table(
        "alert_signals",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("dedupe_key", sa.Text, nullable=False, unique=True),
        sa.Column("alert_id", sa.BigInteger, sa.ForeignKey("alerts.id")),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("signal_type", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("signal", JSONB, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
    )
    op.create_index("ix_alert_signals_alert", "alert_signals", ["alert_id", "id"])
    op.execute("""
        INSERT INTO alert_signals (dedupe_key, alert_id, account_id, signal_type, status, severity,
                                   event_id, occurred_at, received_at, signal, outcome)
        SELECT dedupe_key, id, account_id, signal_type, 'raised', severity, signal_event_id,
               occurred_at, created_at, signal, 'opened' FROM alerts
    """)

    # --- digests ----------------------------------------------------------------------------------
    op.create_table(
        "alert_digests",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("digest_date", sa.Date, nullable=False),
        sa.Column("timezone", sa.Text, nullable=False),
        sa.Column("covers_until", TS, nullable=False),
        sa.Column("items", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("recipient", "digest_date", name="uq_digest_per_day"),
    )
    op.create_table(
        "alert_digest_items",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("alert_id", sa.BigInteger, sa.ForeignKey("alerts.id"), nullable=False),
        sa.Column("signal_id", sa.BigInteger, sa.ForeignKey("alert_signals.id"), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("targets", JSONB, nullable=False),
        sa.Column("timezone", sa.Text, nullable=False),
        sa.Column("digest_time", sa.Text, nullable=False),
        sa.Column("added_at", TS, nullable=False),
        sa.Column("digest_id", sa.BigInteger, sa.ForeignKey("alert_digests.id")),
        sa.UniqueConstraint("recipient", "signal_id", name="uq_digest_item"),
    )
    op.create_index(
        "ix_digest_items_pending",
        "alert_digest_items",
        ["recipient"],
        postgresql_where=sa.text("digest_id IS NULL"),
    )

    # --- deliveries: purposes and the idempotent ledger ------------------------------------------
    op.alter_column("alert_deliveries", "alert_id", nullable=True)
    for column in (
        sa.Column("purpose", sa.Text, nullable=False, server_default="alert"),
        sa.Column("digest_id", sa.BigInteger, sa.ForeignKey("alert_digests.id")),
        sa.Column("delivery_key", sa.Text),
        sa.Column("mention", sa.Text),
        sa.Column("details", JSONB, nullable=False, server_default="{}"),
        sa.Column("pacing_key", sa.Text),
        sa.Column("claimed_at", TS),
        sa.Column("send_started_at", TS),
        sa.Column("in_doubt", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("external_id", sa.Text),
        sa.Column("external_channel", sa.Text),
    ):
        op.add_column("alert_deliveries", column)
    op.execute("UPDATE alert_deliveries SET delivery_key = 'legacy:' || id")
    op.alter_column("alert_deliveries", "delivery_key", nullable=False)
    op.create_unique_constraint("uq_delivery_key", "alert_deliveries", ["delivery_key"])
    op.drop_constraint("uq_delivery_target", "alert_deliveries", type_="unique")
    op.drop_constraint("ck_delivery_status", "alert_deliveries", type_="check")
    op.create_check_constraint(
        "ck_delivery_status",
        "alert_deliveries",
        "status IN ('pending', 'sending', 'sent', 'failed', 'cancelled')",
    )
    op.create_check_constraint(
        "ck_delivery_subject", "alert_deliveries", "alert_id IS NOT NULL OR digest_id IS NOT NULL"
    )
    op.create_index("ix_alert_deliveries_alert", "alert_deliveries", ["alert_id"])

    # --- who did what, and was it useful ---------------------------------------------------------
    op.create_table(
        "alert_actions",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("alert_id", sa.BigInteger, sa.ForeignKey("alerts.id"), nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("via", sa.Text, nullable=False),
        sa.Column("details", JSONB, nullable=False, server_default="{}"),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_alert_actions_alert", "alert_actions", ["alert_id", "id"])
    op.create_table(
        "alert_feedback",
        sa.Column("alert_id", sa.BigInteger, sa.ForeignKey("alerts.id"), primary_key=True),
        sa.Column("actor", sa.Text, primary_key=True),
        sa.Column("signal_type", sa.Text, nullable=False),
        sa.Column("useful", sa.Boolean, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("at", TS, nullable=False),
    )
    op.create_table(
        "recipient_preferences",
        sa.Column("recipient", sa.Text, primary_key=True),
        sa.Column("preferences", JSONB, nullable=False),
        sa.Column("updated_by", sa.Text),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "alert_pacing",
        sa.Column("pacing_key", sa.Text, primary_key=True),
        sa.Column("next_free_at", TS, nullable=False),
    )
    op.create_table(
        "alert_link_secret",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("secret", sa.Text, nullable=False),
        sa.CheckConstraint("id = 1", name="ck_one_link_secret"),
    )


def downgrade() -> None:
    for table in (
        "alert_link_secret",
        "alert_pacing",
        "recipient_preferences",
        "alert_feedback",
        "alert_actions",
    ):
        op.drop_table(table)
    op.drop_index("ix_alert_deliveries_alert", "alert_deliveries")
    op.drop_constraint("ck_delivery_subject", "alert_deliveries", type_="check")
    op.drop_constraint("ck_delivery_status", "alert_deliveries", type_="check")
    op.execute("DELETE FROM alert_deliveries WHERE alert_id IS NULL OR status = 'cancelled'")
    op.create_check_constraint(
        "ck_delivery_status", "alert_deliveries", "status IN ('pending', 'sending', 'sent', 'failed')"
    )
    op.drop_constraint("uq_delivery_key", "alert_deliveries", type_="unique")
    op.execute("""DELETE FROM alert_deliveries d USING alert_deliveries e
                  WHERE d.alert_id = e.alert_id AND d.channel = e.channel
                    AND d.recipient = e.recipient AND d.id > e.id""")
    op.create_unique_constraint(
        "uq_delivery_target", "alert_deliveries", ["alert_id", "channel", "recipient"]
    )
    for name in (
        "external_channel",
        "external_id",
        "in_doubt",
        "send_started_at",
        "claimed_at",
        "pacing_key",
        "details",
        "mention",
        "delivery_key",
        "digest_id",
        "purpose",
    ):
        op.drop_column("alert_deliveries", name)
    op.alter_column("alert_deliveries", "alert_id", nullable=False)
    op.drop_table("alert_digest_items")
    op.drop_table("alert_digests")
    op.drop_table("alert_signals")
    op.drop_index("ix_alerts_timers", "alerts")
    op.drop_index("ix_alerts_last_resolved", "alerts")
    op.drop_index("uq_alerts_one_open", "alerts")
    op.drop_constraint("ck_alert_state", "alerts", type_="check")
    for name in (
        "reopened_count",
        "escalated_at",
        "escalate_at",
        "last_notified_at",
        "notified_severity",
        "clearing_since",
        "resolved_by",
        "resolved_reason",
        "resolved_at",
        "snoozed_by",
        "snooze_reason",
        "snoozed_until",
        "acknowledged_by",
        "acknowledged_at",
        "updated_at",
        "opened_at",
        "last_signal_at",
        "last_dedupe_key",
        "occurrences",
        "segment",
        "kind",
        "state",
    ):
        op.drop_column("alerts", name)
