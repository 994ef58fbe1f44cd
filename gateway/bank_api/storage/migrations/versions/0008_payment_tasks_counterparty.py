"""Payment tasks: the other bank of the payment, so a completion asks the payer's peer directly.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payment_tasks", sa.Column("counterparty", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("payment_tasks", "counterparty")
