"""Drop events (site_id, timestamp): no query reads events by site and time (a lead's events
are read by lead_id), and every stored event paid for it; it also misled the planner into
scanning a site's whole history for the duplicate check on young tables.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 11:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_index("ix_events_site_id_timestamp")


def downgrade() -> None:
    with op.batch_alter_table("events") as batch_op:
        batch_op.create_index("ix_events_site_id_timestamp", ["site_id", "timestamp"], unique=False)
