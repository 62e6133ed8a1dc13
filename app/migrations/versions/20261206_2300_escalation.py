"""The escalation ladder and off-hours choice per site (`team_settings`) and the admins'
assignment rules (`assignment_rules`). New tables only: nothing to backfill (no row: the
defaults).

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-06 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "team_settings",
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("off_hours", sa.String(length=16), nullable=False),
        sa.Column("ladder", JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_team_settings_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_team_settings")),
    )
    op.create_table(
        "assignment_rules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("conditions", JSON, nullable=False),
        sa.Column("user_ids", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_assignment_rules_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignment_rules")),
    )
    op.create_index(
        "ix_assignment_rules_site_id_position", "assignment_rules", ["site_id", "position"]
    )


def downgrade() -> None:
    op.drop_index("ix_assignment_rules_site_id_position", table_name="assignment_rules")
    op.drop_table("assignment_rules")
    op.drop_table("team_settings")
