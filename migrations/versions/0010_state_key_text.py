"""pipeline_state.key as text: a replay keys its sequence base by its file's absolute path,
which can be longer than the 100 characters the column held (PostgreSQL refused it)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite does not check a VARCHAR's length: only PostgreSQL's column changes
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("pipeline_state", "key", type_=sa.Text(),
                        existing_type=sa.String(100), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("pipeline_state", "key", type_=sa.String(100),
                        existing_type=sa.Text(), existing_nullable=False)
