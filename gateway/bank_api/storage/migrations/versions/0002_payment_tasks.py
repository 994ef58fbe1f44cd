"""Payment tasks: the follower's and the sweeper's durable work, one row per payment action.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gateway.bank_api.storage.models import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_tasks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task_key", sa.String(160), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("payment_id", sa.String(64), nullable=False),
        sa.Column("event_name", sa.String(32), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("claimed_until", UtcDateTime(), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("last_error", sa.String(256), nullable=True),
        sa.Column("block_number", sa.BigInteger, nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("task_key", name="uq_payment_tasks_task_key"),
    )
    op.create_index("ix_payment_tasks_next_attempt_at", "payment_tasks", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_table("payment_tasks")
