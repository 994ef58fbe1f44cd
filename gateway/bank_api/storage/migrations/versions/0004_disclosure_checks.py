"""The regulator's checks of disclosed payment details.

Revision ID: 0004
Revises: 0003
Create Date: 2025-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.bank_api.storage.models import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "disclosure_checks",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("bank", sa.String(64), primary_key=True),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("details_hash", sa.String(64), nullable=False),
        sa.Column("checked_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("disclosure_checks")
