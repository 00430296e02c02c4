"""delivery_attempts: one row per call the notifier made to Slack for an outbox message

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["outbox.message_id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_delivery_attempts_message_id", "delivery_attempts", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_delivery_attempts_message_id", table_name="delivery_attempts")
    op.drop_table("delivery_attempts")
