"""alerts: clear evaluations in a row, evaluations since resolving, the last evaluation
counted (triage counts the monitor's evaluations, not seconds of event time)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# the view over alerts, as 0001 created it (SQLite rebuilds the table to drop columns,
# and a view on it must not exist while it does)
ALERT_HISTORY = """
CREATE VIEW alert_history AS
SELECT a.alert_id, a.fingerprint, a.model_id, a.kind, a.subject, a.severity, a.status,
       a.first_seen, a.last_seen, a.occurrences, a.paged, a.acknowledged_at,
       a.acknowledged_by, a.resolved_at, a.summary,
       a.statistic, a.slice, a.model_version, a.route, a.incident_id
FROM alerts a
"""


def upgrade() -> None:
    # plain ADD COLUMN works on PostgreSQL and SQLite alike
    op.add_column("alerts", sa.Column("clean_evaluations", sa.Integer(), nullable=False,
                                      server_default="0"))
    op.add_column("alerts", sa.Column("evaluations_since_resolved", sa.Integer(),
                                      nullable=False, server_default="0"))
    op.add_column("alerts", sa.Column("evaluated_seq", sa.BigInteger(), nullable=False,
                                      server_default="-1"))


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS alert_history")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("evaluated_seq")
        batch.drop_column("evaluations_since_resolved")
        batch.drop_column("clean_evaluations")
    op.execute(ALERT_HISTORY)
