"""Slack delivery: where each page was posted (channel, message ts), to thread and update it

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the view over page_log, as 0001 created it (SQLite rebuilds the table to drop columns,
# and a view on it must not exist while it does)
PAGES = """
CREATE VIEW pages AS
SELECT p.page_id, p.alert_id, p.model_id, p.kind, p.subject, p.paged_at, p.channel,
       p.escalation_level, p.delivered,
       p.incident_id, p.severity, p.dry_run, p.summary
FROM page_log p
"""


def upgrade() -> None:
    # plain ADD COLUMN works on PostgreSQL and SQLite alike
    op.add_column("page_log", sa.Column("slack_channel", sa.String(length=200), nullable=True))
    op.add_column("page_log", sa.Column("slack_ts", sa.String(length=40), nullable=True))


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS pages")
    with op.batch_alter_table("page_log") as batch:
        batch.drop_column("slack_ts")
        batch.drop_column("slack_channel")
    op.execute(PAGES)
