"""Ingest: a claimed messageId whose publish failed after its record reached the producer is
kept "in doubt" (the record may still be sent) until the producer reports its outcome.

Revision ID: 0004_ingest
Revises: 0003_ingest
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_ingest"
down_revision: str | None = "0003_ingest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("ingest_message_ids",
                  sa.Column("in_doubt", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("ingest_message_ids", "in_doubt")
