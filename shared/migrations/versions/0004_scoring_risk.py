"""Churn risk: weekly feature snapshots and outcomes written by live scoring, and the model registry.

Revision ID: 0004_scoring_risk
Revises: 0003_scoring
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import BYTEA, JSONB

revision: str = "0004_scoring_risk"
down_revision: str | None = "0003_scoring"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "risk_snapshots",
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("features_version", sa.Integer, nullable=False),
        sa.Column("features", JSONB, nullable=False),
        sa.Column("scorecard_score", sa.Float),
        sa.Column("activity_28d", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "at"),
    )
    op.create_index("risk_snapshots_at", "risk_snapshots", ["at"])
    op.create_table(
        "risk_outcomes",
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "kind", "at"),
    )
    op.create_table(
        "risk_models",
        sa.Column("version", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("fitted_by", sa.Text, nullable=False),
        sa.Column("features_version", sa.Integer, nullable=False),
        sa.Column("columns", JSONB, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("horizon_days", sa.Float, nullable=False),
        sa.Column("fitted_until", TS, nullable=False),
        sa.Column("metrics", JSONB, nullable=False),
        sa.Column("artifact", BYTEA, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("activated_at", TS),
        sa.Column("activated_by", sa.Text),
    )
    op.create_table(
        "risk_model_activations",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("version", sa.BigInteger, sa.ForeignKey("risk_models.version"), nullable=False),
        sa.Column("activated_at", TS, nullable=False),
        sa.Column("activated_by", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("risk_model_activations")
    op.drop_table("risk_models")
    op.drop_table("risk_outcomes")
    op.drop_table("risk_snapshots")
