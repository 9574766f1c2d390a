"""Scoring on event time: account state per partition, explained history, overrides audit.

The account state format changes completely (a settled model plus the pending entries of
the lateness window, stored compactly as bytes), so scoring's tables are rebuilt and its
consumer position is reset: on its next start scoring re-reads its input topics from what
Kafka retains and rebuilds every account (the same as `churnwatch replay --all`).

Revision ID: 0003_scoring
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import BYTEA, JSONB

revision = "0003_scoring"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
GROUP = "churnwatch-scoring"


def upgrade() -> None:
    op.drop_table("score_changes")
    op.drop_table("account_health")
    op.execute(sa.text("DELETE FROM consumer_offsets WHERE consumer_group = :g").bindparams(g=GROUP))
    op.execute(sa.text("DELETE FROM processed_events WHERE consumer_group = :g").bindparams(g=GROUP))

    op.create_table(
        "account_health",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("state", BYTEA, nullable=False),
        sa.Column("account_name", sa.Text),
        sa.Column("segment", sa.Text),
        sa.Column("score", sa.Float),
        sa.Column("band", sa.Text),
        sa.Column("computed_score", sa.Float),
        sa.Column("computed_band", sa.Text),
        sa.Column("override", JSONB),
        sa.Column("signals", JSONB, nullable=False, server_default="{}"),
        sa.Column("renewal_date", sa.Date),
        sa.Column("mrr", sa.Float),
        sa.Column("churned", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("last_event_at", TS),
        sa.Column("next_due_at", TS),
        sa.Column("events_applied", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("late_events", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("scorecard_version", sa.Text),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_account_health_partition", "account_health", ["partition"])
    op.create_index("ix_account_health_band_score", "account_health", ["band", "score"])
    op.create_index("ix_account_health_renewal", "account_health", ["renewal_date"])

    op.create_table(
        "score_changes",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("cause_type", sa.Text, nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("previous_score", sa.Float),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("previous_band", sa.Text),
        sa.Column("band", sa.Text, nullable=False),
        sa.Column("computed_score", sa.Float, nullable=False),
        sa.Column("segment", sa.Text, nullable=False),
        sa.Column("override", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("factors", JSONB, nullable=False),
        sa.Column("contributions", JSONB, nullable=False),
        sa.Column("replayed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("recorded_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_score_changes_account", "score_changes", ["account_id", "id"])
    op.create_index("ix_score_changes_account_time", "score_changes", ["account_id", "occurred_at"])

    op.create_table(
        "scoring_partitions",
        sa.Column("partition", sa.Integer, primary_key=True),
        # Bumped by every commit that changes the partition's accounts: an instance whose
        # in-memory copy carries another version reloads it (a fence against stale owners).
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("max_event_at", sa.Float),  # epoch seconds: the watermark is this minus the lateness
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )

    # Outputs of consumers that use a transactional outbox (shared/consumer.py), published
    # by a relay after their batch commits.
    op.create_table(
        "consumer_outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("consumer_group", sa.Text, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("key", BYTEA),
        sa.Column("value", BYTEA, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_consumer_outbox_group", "consumer_outbox", ["consumer_group", "id"])

    op.create_table(
        "health_overrides",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("override_id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("kind", sa.Text),
        sa.Column("score", sa.Float),
        sa.Column("band", sa.Text),
        sa.Column("reason", sa.Text),
        sa.Column("author", sa.Text, nullable=False),
        sa.Column("expires_at", TS),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_health_overrides_account", "health_overrides", ["account_id", "id"])


def downgrade() -> None:
    for table in (
        "health_overrides",
        "consumer_outbox",
        "scoring_partitions",
        "score_changes",
        "account_health",
    ):
        op.drop_table(table)
    op.execute(sa.text("DELETE FROM consumer_offsets WHERE consumer_group = :g").bindparams(g=GROUP))
    op.execute(sa.text("DELETE FROM processed_events WHERE consumer_group = :g").bindparams(g=GROUP))
    # 0001's shape, empty: the previous scoring rebuilds it from Kafka.
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
