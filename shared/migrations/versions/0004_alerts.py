"""Alerts: one row per delivery attempt (the delivery row keeps only the latest result).

Revision ID: 0004_alerts
Revises: 0003_alerts
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_alerts"
down_revision: str | None = "0003_alerts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_delivery_attempts",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "delivery_id",
            sa.BigInteger,
            sa.ForeignKey("alert_deliveries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("claimed_at", TS),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("response", sa.Text),
        sa.Column("in_doubt", sa.Boolean, nullable=False, server_default=sa.false()),
        # One result per claim: the dispatcher's fencing lets only the holder of an attempt record it.
        sa.UniqueConstraint("delivery_id", "attempt", name="uq_delivery_attempt"),
        sa.CheckConstraint(
            "outcome IN ('sent', 'retry', 'failed', 'cancelled', 'interrupted')",
            name="ck_delivery_attempt_outcome",
        ),
    )


def downgrade() -> None:
    op.drop_table("alert_delivery_attempts")
