"""The regulator's monitoring: alert rules, alerts, the payments its rules have seen.

Revision ID: 0003
Revises: 0002
Create Date: 2025-02-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.bank_api.storage.models import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("rule", sa.String(32), primary_key=True),
        sa.Column("settings", sa.Text, nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("dedup_key", sa.String(200), nullable=False, unique=True),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("raised_at", UtcDateTime(), nullable=False),
        sa.Column("acknowledged_at", UtcDateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(32), nullable=True),
        sa.Column("acknowledgement_note", sa.String(200), nullable=True),
    )
    op.create_index("ix_alerts_rule", "alerts", ["rule"])
    op.create_index("ix_alerts_raised_at", "alerts", ["raised_at"])
    op.create_table(
        "observed_payments",
        sa.Column("payment_id", sa.String(64), primary_key=True),
        sa.Column("payer_bank", sa.String(64), nullable=False),
        sa.Column("payee_bank", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_observed_payments_pair_time", "observed_payments", ["payer_bank", "payee_bank", "created_at"])


def downgrade() -> None:
    op.drop_table("observed_payments")
    op.drop_table("alerts")
    op.drop_table("alert_rules")
