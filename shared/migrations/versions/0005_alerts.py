"""Alerts: one open alert per account and kind (its risk episode, its expansion opportunity),
each signal type raised in it a reason.

Accounts with several open alerts of a kind (one per signal type before this) keep the oldest: the
others' reasons move into it and they are resolved as merged, their unsent messages cancelled.

Revision ID: 0005_alerts
Revises: 0004_alerts
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0005_alerts"
down_revision: str | None = "0004_alerts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_reasons",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "alert_id", sa.BigInteger, sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("signal_type", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("signal", JSONB, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("occurrences", sa.Integer, nullable=False),
        sa.Column("first_signal_at", TS, nullable=False),
        sa.Column("last_signal_at", TS, nullable=False),
        sa.Column("clearing_since", TS),
        sa.Column("cleared_at", TS),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("alert_id", "signal_type", name="uq_alert_reason"),
        sa.CheckConstraint("state IN ('active', 'cleared')", name="ck_alert_reason_state"),
    )
    op.create_index(
        "ix_alert_reasons_clearing",
        "alert_reasons",
        ["clearing_since"],
        postgresql_where=sa.text("state = 'active' AND clearing_since IS NOT NULL"),
    )
    # Every alert so far had exactly one reason: its own signal type.
    op.execute("""
        INSERT INTO alert_reasons (alert_id, signal_type, kind, severity, summary, signal, state,
                                   occurrences, first_signal_at, last_signal_at, clearing_since,
                                   cleared_at, updated_at)
        SELECT id, signal_type, kind, severity, summary, signal,
               CASE WHEN state = 'resolved' THEN 'cleared' ELSE 'active' END,
               occurrences, occurred_at, last_signal_at,
               CASE WHEN state = 'resolved' THEN NULL ELSE clearing_since END,
               CASE WHEN state = 'resolved' THEN coalesce(resolved_at, now()) END,
               coalesce(updated_at, created_at, now())
        FROM alerts
    """)
    # Several open alerts of one account become one: the oldest keeps the episode.
    op.execute("""
        CREATE TEMPORARY TABLE alert_merges AS
        SELECT a.id AS merged, k.id AS keeper
        FROM alerts a
        JOIN LATERAL (SELECT min(b.id) AS id FROM alerts b
                      WHERE b.account_id = a.account_id AND b.kind = a.kind
                        AND b.state <> 'resolved') k ON true
        WHERE a.state <> 'resolved' AND a.id <> k.id
    """)
    op.execute("""
        UPDATE alert_reasons r SET alert_id = m.keeper FROM alert_merges m WHERE r.alert_id = m.merged
    """)
    op.execute("""
        UPDATE alerts a SET
            severity = s.severity,
            occurrences = s.occurrences,
            last_signal_at = s.last_signal_at,
            clearing_since = s.clearing_since,
            notified_severity = CASE WHEN s.notified = 3 THEN 'high' WHEN s.notified = 2 THEN 'medium'
                                     WHEN s.notified = 1 THEN 'low' ELSE a.notified_severity END
        FROM (
            SELECT m.keeper,
                   (array_agg(r.severity ORDER BY CASE r.severity WHEN 'high' THEN 3
                                                  WHEN 'medium' THEN 2 ELSE 1 END DESC))[1] AS severity,
                   sum(r.occurrences) AS occurrences,
                   max(r.last_signal_at) AS last_signal_at,
                   CASE WHEN bool_and(r.clearing_since IS NOT NULL) THEN max(r.clearing_since) END
                       AS clearing_since,
                   (SELECT max(CASE o.notified_severity WHEN 'high' THEN 3 WHEN 'medium' THEN 2
                                                        WHEN 'low' THEN 1 ELSE 0 END)
                    FROM alerts o WHERE o.id = m.keeper
                       OR o.id IN (SELECT merged FROM alert_merges n WHERE n.keeper = m.keeper))
                       AS notified
            FROM (SELECT DISTINCT keeper FROM alert_merges) m
            JOIN alert_reasons r ON r.alert_id = m.keeper
            GROUP BY m.keeper
        ) s
        WHERE a.id = s.keeper
    """)
    op.execute("""
        UPDATE alert_deliveries d SET status = 'cancelled',
               last_response = 'not sent: merged into the account''s one open alert'
        FROM alert_merges m WHERE d.alert_id = m.merged AND d.status = 'pending'
    """)
    op.execute("""
        UPDATE alerts a SET state = 'resolved', resolved_at = now(), clearing_since = NULL,
               resolved_reason = 'merged into alert ' || m.keeper, resolved_by = 'migration'
        FROM alert_merges m WHERE a.id = m.merged
    """)
    op.execute("DROP TABLE alert_merges")
    op.drop_index("uq_alerts_one_open", "alerts")
    op.create_index(
        "uq_alerts_one_open",
        "alerts",
        ["account_id", "kind"],
        unique=True,
        postgresql_where=sa.text("state <> 'resolved'"),
    )
    op.drop_index("ix_alerts_last_resolved", "alerts")
    op.create_index(
        "ix_alerts_last_resolved",
        "alerts",
        ["account_id", "kind", "resolved_at"],
        postgresql_where=sa.text("state = 'resolved'"),
    )


def downgrade() -> None:
    # One open alert per account also satisfies one per (account, signal type).
    op.drop_index("ix_alerts_last_resolved", "alerts")
    op.create_index(
        "ix_alerts_last_resolved",
        "alerts",
        ["account_id", "signal_type", "resolved_at"],
        postgresql_where=sa.text("state = 'resolved'"),
    )
    op.drop_index("uq_alerts_one_open", "alerts")
    op.create_index(
        "uq_alerts_one_open",
        "alerts",
        ["account_id", "signal_type"],
        unique=True,
        postgresql_where=sa.text("state <> 'resolved'"),
    )
    op.drop_index("ix_alert_reasons_clearing", "alert_reasons")
    op.drop_table("alert_reasons")
