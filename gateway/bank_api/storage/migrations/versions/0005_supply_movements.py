"""The supply changes the regulator's monitor has seen, for supply over time and the drift rule.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.bank_api.storage.models import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "supply_movements",
        sa.Column("transaction_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("issuer", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("delta", sa.BigInteger(), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_supply_movements_class_time", "supply_movements", ["issuer", "currency", "at"])


def downgrade() -> None:
    op.drop_index("ix_supply_movements_class_time", table_name="supply_movements")
    op.drop_table("supply_movements")
