"""indexes for the console's lists: alerts newest raised first (alone, by status, by kind),
unresolved incidents newest first, an alert's occurrences in order and its feedback

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# name, table, columns: each list is read newest first by an index range, never a sort of
# the table (a year of alerts stays a page's worth of index entries per request)
INDEXES = [
    ("ix_alerts_first_seen", "alerts", ["first_seen", "alert_id"]),
    ("ix_alerts_status_first_seen", "alerts", ["status", "first_seen", "alert_id"]),
    ("ix_alerts_kind_first_seen", "alerts", ["kind", "first_seen", "alert_id"]),
    ("ix_alerts_model_first_seen_id", "alerts", ["model_id", "first_seen", "alert_id"]),
    ("ix_incidents_status_opened_at", "incidents", ["status", "opened_at", "incident_id"]),
    ("ix_occurrences_alert_seq", "occurrences", ["alert_id", "seq"]),
    ("ix_feedback_alert_id", "feedback", ["alert_id"]),
]


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
