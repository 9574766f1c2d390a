"""Ingest: per-write-key rate buckets shared by every instance; Zendesk requester mappings.

Revision ID: 0003_ingest
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_ingest"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # One token bucket per write key (or per webhook source), on the database's clock, so a
    # key's rate holds however many ingest instances share its traffic.
    op.create_table(
        "ingest_rate_buckets",
        sa.Column("bucket", sa.Text, primary_key=True),
        sa.Column("tokens", sa.Float, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    # Zendesk's ticket events name the requester by id only: an explicit id -> account row.
    op.drop_constraint("ck_mapping_kind", "ticket_account_mappings", type_="check")
    op.create_check_constraint(
        "ck_mapping_kind", "ticket_account_mappings",
        "kind IN ('organization', 'email_domain', 'zendesk_requester')",
    )


def downgrade() -> None:
    op.execute("DELETE FROM ticket_account_mappings WHERE kind = 'zendesk_requester'")
    op.drop_constraint("ck_mapping_kind", "ticket_account_mappings", type_="check")
    op.create_check_constraint("ck_mapping_kind", "ticket_account_mappings",
                               "kind IN ('organization', 'email_domain')")
    op.drop_table("ingest_rate_buckets")
