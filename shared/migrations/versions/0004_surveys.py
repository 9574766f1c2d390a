"""Surveys: Zendesk requesters (the contact's `zendesk_user_id`), solved tickets kept until
their requester is known, and the scheduler's keyset over contacts.

Revision ID: 0004_surveys
Revises: 0003_surveys
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_surveys"
down_revision: str | None = "0003_surveys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("survey_contacts", sa.Column("zendesk_user_id", sa.Text))
    # Contacts whose identify traits already carried the id (stored merged, as sent).
    op.execute("""
        UPDATE survey_contacts SET zendesk_user_id = btrim(traits->>'zendesk_user_id')
        WHERE (jsonb_typeof(traits->'zendesk_user_id') = 'string'
               AND btrim(traits->>'zendesk_user_id') <> '')
           OR (jsonb_typeof(traits->'zendesk_user_id') = 'number'
               AND traits->>'zendesk_user_id' ~ '^[0-9]+$')
    """)
    op.create_index("ix_survey_contacts_zendesk_user", "survey_contacts", ["zendesk_user_id"],
                    postgresql_where=sa.text("zendesk_user_id IS NOT NULL"))
    # The scheduler pages through contacts by (email, user_id).
    op.create_index("ix_survey_contacts_email_user", "survey_contacts", ["email", "user_id"],
                    postgresql_where=sa.text("email IS NOT NULL"))
    op.create_table(
        "survey_unmatched_tickets",
        sa.Column("source", sa.Text, primary_key=True),
        sa.Column("ticket_id", sa.Text, primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("requester_id", sa.Text),
        sa.Column("user_id", sa.Text),
        sa.Column("account_id", sa.Text),
        sa.Column("solved_at", TS, nullable=False),
        sa.Column("kept_at", TS, nullable=False),
    )
    op.create_index("ix_survey_unmatched_tickets_requester", "survey_unmatched_tickets",
                    ["requester_id"], postgresql_where=sa.text("requester_id IS NOT NULL"))
    op.create_index("ix_survey_unmatched_tickets_user", "survey_unmatched_tickets",
                    ["user_id"], postgresql_where=sa.text("user_id IS NOT NULL"))
    op.create_index("ix_survey_unmatched_tickets_kept", "survey_unmatched_tickets", ["kept_at"])


def downgrade() -> None:
    op.drop_table("survey_unmatched_tickets")
    op.drop_index("ix_survey_contacts_email_user", table_name="survey_contacts")
    op.drop_index("ix_survey_contacts_zendesk_user", table_name="survey_contacts")
    op.drop_column("survey_contacts", "zendesk_user_id")
