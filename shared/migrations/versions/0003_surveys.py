"""Surveys: unmapped and vendor responses, contacts, survey definitions, invitations, unsubscribes.

Revision ID: 0003_surveys
Revises: 0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0003_surveys"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # --- responses: where they came from, who answered, and whether they are mapped yet ----
    op.alter_column("survey_responses", "account_id", nullable=True)
    op.add_column("survey_responses", sa.Column("source", sa.Text, nullable=False,
                                                server_default="api"))
    op.add_column("survey_responses", sa.Column("channel", sa.Text, nullable=False,
                                                server_default="api"))
    op.add_column("survey_responses", sa.Column("respondent_email", sa.Text))
    op.add_column("survey_responses", sa.Column("mapped_by", sa.Text))
    op.add_column("survey_responses", sa.Column("campaign_id", sa.Text))
    op.add_column("survey_responses", sa.Column("invitation_id", sa.Text))
    op.add_column("survey_responses", sa.Column("ticket_id", sa.Text))
    # The source's own version time: Delighted keeps created_at and moves updated_at.
    op.add_column("survey_responses", sa.Column("updated_at", TS))
    op.execute("UPDATE survey_responses SET updated_at = submitted_at, mapped_by = 'explicit'")
    op.alter_column("survey_responses", "updated_at", nullable=False)
    op.create_index("ix_survey_responses_unmapped_email", "survey_responses", ["respondent_email"],
                    postgresql_where=sa.text("account_id IS NULL"))
    op.create_index("ix_survey_responses_unmapped_user", "survey_responses", ["user_id"],
                    postgresql_where=sa.text("account_id IS NULL"))
    op.create_index("ix_survey_responses_respondent", "survey_responses",
                    ["respondent_email", "submitted_at"])
    op.create_index("ix_survey_responses_submitted", "survey_responses",
                    ["survey_type", "submitted_at"])
    op.create_index("ix_survey_responses_campaign", "survey_responses", ["campaign_id"])

    # --- who can be surveyed: users (identify) and their accounts (group) ------------------
    op.create_table(
        "survey_contacts",
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("email", sa.Text),  # lower-cased
        sa.Column("name", sa.Text),
        sa.Column("role", sa.Text),
        sa.Column("traits", JSONB, nullable=False, server_default="{}"),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_survey_contacts_email", "survey_contacts", ["email"])
    op.create_table(
        "survey_memberships",
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("occurred_at", TS, nullable=False),
    )
    op.create_index("ix_survey_memberships_account", "survey_memberships", ["account_id"])
    op.create_table(
        "survey_accounts",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("traits", JSONB, nullable=False, server_default="{}"),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )

    # --- what to ask whom, and when ----------------------------------------------------------
    op.create_table(
        "survey_definitions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("survey_type", sa.Text, nullable=False),
        sa.Column("trigger", sa.Text, nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("comment_question", sa.Text),
        sa.Column("audience", JSONB, nullable=False, server_default="{}"),
        sa.Column("cadence_days", sa.Integer),
        sa.Column("status", sa.Text, nullable=False, server_default="active"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("survey_type IN ('nps', 'csat', 'ces')", name="ck_definition_type"),
        sa.CheckConstraint("trigger IN ('relationship', 'ticket_solved')", name="ck_definition_trigger"),
        sa.CheckConstraint("status IN ('active', 'paused', 'archived')", name="ck_definition_status"),
    )
    op.create_table(
        "survey_invitations",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("definition_id", sa.Text, sa.ForeignKey("survey_definitions.id"), nullable=False),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("user_id", sa.Text),
        sa.Column("account_id", sa.Text),
        sa.Column("ticket_id", sa.Text),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("sent_at", TS),
        sa.Column("used_at", TS),
        sa.Column("response_id", sa.Text),
        sa.UniqueConstraint("definition_id", "ticket_id", name="uq_invitation_ticket"),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed', 'cancelled')",
            name="ck_invitation_status"),
    )
    op.create_index("ix_survey_invitations_due", "survey_invitations", ["status", "next_attempt_at"])
    op.create_index("ix_survey_invitations_email", "survey_invitations", ["email", "created_at"])
    op.create_index("ix_survey_invitations_definition", "survey_invitations",
                    ["definition_id", "email", "created_at"])
    op.create_table(
        "survey_unsubscribes",
        sa.Column("email", sa.Text, primary_key=True),
        sa.Column("unsubscribed_at", TS, nullable=False),
        sa.Column("invitation_id", sa.Text),
    )


def downgrade() -> None:
    for table in ("survey_unsubscribes", "survey_invitations", "survey_definitions",
                  "survey_accounts", "survey_memberships", "survey_contacts"):
        op.drop_table(table)
    for index in ("ix_survey_responses_campaign", "ix_survey_responses_submitted",
                  "ix_survey_responses_respondent", "ix_survey_responses_unmapped_user",
                  "ix_survey_responses_unmapped_email"):
        op.drop_index(index, table_name="survey_responses")
    for column in ("updated_at", "ticket_id", "invitation_id", "campaign_id", "mapped_by",
                   "respondent_email", "channel", "source"):
        op.drop_column("survey_responses", column)
    op.execute("DELETE FROM survey_responses WHERE account_id IS NULL")
    op.alter_column("survey_responses", "account_id", nullable=False)
