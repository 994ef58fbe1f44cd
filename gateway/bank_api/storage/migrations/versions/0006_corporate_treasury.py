"""Corporate groups, their accounts, standing orders (scheduled payments and sweeps) and their runs.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.bank_api.storage.models import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "corporate_groups",
        sa.Column("group_id", sa.String(48), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "group_accounts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "group_id", sa.String(48), sa.ForeignKey("corporate_groups.group_id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("bank", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("added_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("group_id", "bank", "account_id", name="uq_group_accounts_member"),
    )
    op.create_index("ix_group_accounts_group_id", "group_accounts", ["group_id"])
    op.create_table(
        "standing_orders",
        sa.Column("order_id", sa.String(40), primary_key=True),
        sa.Column(
            "group_id", sa.String(48), sa.ForeignKey("corporate_groups.group_id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("from_account", sa.String(64), nullable=False),
        sa.Column("to_bank", sa.String(64), nullable=False),
        sa.Column("to_account", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=True),
        sa.Column("target_balance", sa.BigInteger, nullable=True),
        sa.Column("top_up", sa.Integer, nullable=False),
        sa.Column("on_credit", sa.Integer, nullable=False),
        sa.Column("every", sa.String(8), nullable=True),
        sa.Column("start_at", UtcDateTime(), nullable=False),
        sa.Column("next_due_at", UtcDateTime(), nullable=True),
        sa.Column("runs_claimed", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("remittance", sa.String(140), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_standing_orders_group_id", "standing_orders", ["group_id"])
    op.create_index("ix_standing_orders_from_account", "standing_orders", ["from_account"])
    op.create_index("ix_standing_orders_next_due_at", "standing_orders", ["next_due_at"])
    op.create_table(
        "standing_order_runs",
        sa.Column("run_id", sa.String(40), primary_key=True),
        sa.Column(
            "order_id", sa.String(40), sa.ForeignKey("standing_orders.order_id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("due_at", UtcDateTime(), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("amount", sa.BigInteger, nullable=True),
        sa.Column("payer_account", sa.String(64), nullable=True),
        sa.Column("payee_bank", sa.String(64), nullable=True),
        sa.Column("payee_account", sa.String(64), nullable=True),
        sa.Column("payment_id", sa.String(80), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.String(256), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_standing_order_runs_order_due", "standing_order_runs", ["order_id", "due_at"])
    op.create_index("ix_standing_order_runs_status", "standing_order_runs", ["status"])


def downgrade() -> None:
    op.drop_table("standing_order_runs")
    op.drop_table("standing_orders")
    op.drop_table("group_accounts")
    op.drop_table("corporate_groups")
