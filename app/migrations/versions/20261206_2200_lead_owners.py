"""Lead owners: `leads.owner_id` and `owner_assigned_at` (null for the leads that exist:
nobody owned them), with an index for a person's leads (no foreign key: see
app.domain.tables); per person `max_open_hot_leads` (null: no limit) and `on_call` (false for
everybody that exists).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs: nothing copies `leads` on SQLite (which would drop the funnel's
    # triggers of migration 0011); no foreign key for that reason (see the model).
    op.add_column("leads", sa.Column("owner_id", sa.Uuid(), nullable=True))
    op.add_column(
        "leads", sa.Column("owner_assigned_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_leads_owner_id_assigned_at",
        "leads",
        ["owner_id", "owner_assigned_at"],
        postgresql_where=sa.text("owner_id IS NOT NULL"),
        sqlite_where=sa.text("owner_id IS NOT NULL"),
    )
    op.add_column("users", sa.Column("max_open_hot_leads", sa.Integer(), nullable=True))
    op.add_column(
        "users", sa.Column("on_call", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    op.drop_column("users", "on_call")
    op.drop_column("users", "max_open_hot_leads")
    op.drop_index("ix_leads_owner_id_assigned_at", table_name="leads")
    op.drop_column("leads", "owner_assigned_at")
    op.drop_column("leads", "owner_id")
