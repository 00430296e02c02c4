"""indexes for the console found on PostgreSQL: every incident newest opened first, a
model's incidents (both were a scan and a sort of every incident), and a model's alerts
still seen in a range (the model page walked every older alert of the model)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = [
    ("ix_incidents_opened_at", "incidents", ["opened_at", "incident_id"]),
    ("ix_incidents_model_opened_at", "incidents", ["model_id", "opened_at", "incident_id"]),
    ("ix_alerts_model_last_seen", "alerts", ["model_id", "last_seen"]),
]


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
