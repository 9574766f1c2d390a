"""Scoring: which churn-risk model version produced each shown score and each history row.

NULL where the scorecard produced it (every existing row): live scoring fills it as the active
model scores accounts, or `churnwatch replay --all` at once.

Revision ID: 0006_scoring_model_serving
Revises: 0005_scoring_peers
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_scoring_model_serving"
down_revision: str | None = "0005_scoring_peers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("account_health", sa.Column("model_version", sa.BigInteger))
    op.add_column("score_changes", sa.Column("model_version", sa.BigInteger))


def downgrade() -> None:
    op.drop_column("score_changes", "model_version")
    op.drop_column("account_health", "model_version")
