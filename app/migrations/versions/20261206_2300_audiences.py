"""Audiences for nurturing: `audiences` (a site's saved filters, and the state of the job that
computes their members) and `audience_members`; and `temperature_moves`, the funnel's count
of leads that moved between temperatures. New tables only: nothing on `leads` changes.

Revision ID: 0020
Revises: 0017
Create Date: 2026-12-06 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
COMPUTING = "state = 'computing'"


def upgrade() -> None:
    op.create_table(
        "audiences",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("filters", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("computed_after", sa.Uuid(), nullable=True),
        sa.Column("job_lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("job_notifies", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_audiences_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audiences")),
    )
    op.create_index("ix_audiences_site_id", "audiences", ["site_id"])
    op.create_index(
        "ix_audiences_computing",
        "audiences",
        ["job_lease_until"],
        postgresql_where=sa.text(COMPUTING),
        sqlite_where=sa.text(COMPUTING),
    )
    op.create_table(
        "audience_members",
        sa.Column("audience_id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["audience_id"],
            ["audiences.id"],
            name=op.f("fk_audience_members_audience_id_audiences"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_audience_members_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("audience_id", "lead_id", name=op.f("pk_audience_members")),
    )
    op.create_index("ix_audience_members_lead_id", "audience_members", ["lead_id"])
    op.create_table(
        "temperature_moves",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_temperature", sa.String(length=8), nullable=False),
        sa.Column("to_temperature", sa.String(length=8), nullable=False),
        sa.Column("leads", sa.Integer(), nullable=False),
        sa.Column("compacted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_temperature_moves")),
    )
    op.create_index("ix_temperature_moves_site_id_at", "temperature_moves", ["site_id", "at"])
    op.create_index(
        "ix_temperature_moves_raw_at",
        "temperature_moves",
        ["at"],
        postgresql_where=sa.text("NOT compacted"),
        sqlite_where=sa.text("NOT compacted"),
    )


def downgrade() -> None:
    op.drop_table("temperature_moves")
    op.drop_table("audience_members")
    op.drop_table("audiences")
