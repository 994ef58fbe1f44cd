"""Payment tasks: an index on (state, next_attempt_at) for the dispatcher's look for due tasks.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_payment_tasks_state_due", "payment_tasks", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_payment_tasks_state_due", table_name="payment_tasks")
