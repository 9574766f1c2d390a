"""Scoring: each partition's peer table (the segment percentiles of `peer_usage`), stored with the
partition's version and watermark, in the batch's transaction.

Empty for existing partitions: it fills as their accounts are scored (a day of event time for
the first reference), or at once with `churnwatch replay --all`.

Revision ID: 0005_scoring_peers
Revises: 0004_scoring_risk
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_scoring_peers"
down_revision: str | None = "0004_scoring_risk"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("scoring_partitions", sa.Column("peers", sa.LargeBinary))


def downgrade() -> None:
    op.drop_column("scoring_partitions", "peers")
