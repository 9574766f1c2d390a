"""Ingest: explicit ticket-to-account mappings, message-id dedupe, write-key metadata.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Help-desk organisation ids or requester email domains -> Churnwatch accounts.
    op.create_table(
        "ticket_account_mappings",
        sa.Column("kind", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("kind IN ('organization', 'email_domain')", name="ck_mapping_kind"),
    )
    # Segment messageIds seen by any ingest instance, kept for the dedupe window.
    op.create_table(
        "ingest_message_ids",
        sa.Column("message_id", sa.Text, primary_key=True),
        sa.Column("received_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_ingest_message_ids_received_at", "ingest_message_ids", ["received_at"])
    # Keys are listed and revoked by a public id; the secret itself is never stored.
    op.add_column("write_keys", sa.Column("key_id", sa.Text, unique=True))
    op.add_column("write_keys", sa.Column("key_prefix", sa.Text))


def downgrade() -> None:
    op.drop_column("write_keys", "key_prefix")
    op.drop_column("write_keys", "key_id")
    op.drop_table("ingest_message_ids")
    op.drop_table("ticket_account_mappings")
