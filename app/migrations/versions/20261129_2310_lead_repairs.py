"""lead_repairs: leads whose events were stored without the downstream work (profile fold,
scoring, webhook consumers) because it failed; a background job rebuilds them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lead_repairs",
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("temperature_before", sa.String(length=8), nullable=True),
        sa.Column("identified_before", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=2000), nullable=True),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_lead_repairs_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_lead_repairs_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_lead_repairs")),
    )
    with op.batch_alter_table("lead_repairs", schema=None) as batch_op:
        batch_op.create_index("ix_lead_repairs_due_at", ["due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("lead_repairs", schema=None) as batch_op:
        batch_op.drop_index("ix_lead_repairs_due_at")
    op.drop_table("lead_repairs")
