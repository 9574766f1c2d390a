"""Foundation schema: consumer bookkeeping and each service's own tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # --- shared: what each consumer group has durably processed ---------------------------
    op.create_table(
        "consumer_offsets",
        sa.Column("consumer_group", sa.Text, primary_key=True),
        sa.Column("topic", sa.Text, primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "processed_events",
        sa.Column("consumer_group", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("processed_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_processed_events_processed_at", "processed_events", ["processed_at"])

    # --- ingest -----------------------------------------------------------------------------
    op.create_table(
        "write_keys",
        sa.Column("key_hash", sa.Text, primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("revoked_at", TS),
    )
    op.create_table(
        "user_accounts",
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )

    # --- surveys ----------------------------------------------------------------------------
    op.create_table(
        "survey_responses",
        sa.Column("response_id", sa.Text, primary_key=True),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("user_id", sa.Text),
        sa.Column("survey_type", sa.Text, nullable=False),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("submitted_at", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
        sa.CheckConstraint("survey_type IN ('nps', 'csat', 'ces')", name="ck_survey_type"),
    )
    op.create_index(
        "ix_survey_responses_account", "survey_responses", ["account_id", "survey_type", "submitted_at"]
    )

    # --- scoring ----------------------------------------------------------------------------
    op.create_table(
        "account_health",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("state", JSONB, nullable=False),
        sa.Column("score", sa.Float),
        sa.Column("band", sa.Text),
        sa.Column("factors", JSONB, nullable=False, server_default="[]"),
        sa.Column("last_event_at", TS),
        sa.Column("events_applied", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "score_changes",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("previous_score", sa.Float),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("previous_band", sa.Text),
        sa.Column("band", sa.Text, nullable=False),
        sa.Column("factors", JSONB, nullable=False),
        sa.Column("recorded_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_score_changes_account", "score_changes", ["account_id", "id"])

    # --- alerts -----------------------------------------------------------------------------
    op.create_table(
        "account_contacts",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("account_name", sa.Text),
        sa.Column("csm_email", sa.Text),
        sa.Column("csm_slack_channel", sa.Text),
        sa.Column("traits", JSONB, nullable=False, server_default="{}"),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("dedupe_key", sa.Text, nullable=False, unique=True),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("signal_type", sa.Text, nullable=False),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("signal_event_id", sa.Text, nullable=False),
        sa.Column("signal", JSONB, nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_alerts_account", "alerts", ["account_id", "id"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("alert_id", sa.BigInteger, sa.ForeignKey("alerts.id"), nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_response", sa.Text),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("sent_at", TS),
        sa.UniqueConstraint("alert_id", "channel", "recipient", name="uq_delivery_target"),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed')", name="ck_delivery_status"
        ),
        sa.CheckConstraint("channel IN ('slack', 'email')", name="ck_delivery_channel"),
    )
    op.create_index("ix_alert_deliveries_due", "alert_deliveries", ["status", "next_attempt_at"])


def downgrade() -> None:
    for table in (
        "alert_deliveries",
        "alerts",
        "account_contacts",
        "score_changes",
        "account_health",
        "survey_responses",
        "user_accounts",
        "write_keys",
        "processed_events",
        "consumer_offsets",
    ):
        op.drop_table(table)
