"""Dead letters: which ones `churnwatch dead-letters replay` has put back on their topics.

Revision ID: 0003_dead_letters
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_dead_letters"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One row per dead letter replayed (its partition:offset on the dead-letter topic), so a
    # second replay of the same one is skipped unless forced.
    op.create_table(
        "dead_letter_replays",
        sa.Column("dead_letter_topic", sa.Text, primary_key=True),
        sa.Column("dead_letter_id", sa.Text, primary_key=True),
        sa.Column("source_topic", sa.Text, nullable=False),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("dead_letter_replays")
