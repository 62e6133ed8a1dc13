"""Scoring: rule-set versions, re-scoring jobs, and the lead's score, temperature and status.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 09:04:31.335789
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "rescore_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("rule_set_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_rescore_jobs_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rescore_jobs")),
    )
    with op.batch_alter_table("rescore_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rescore_jobs_site_id"), ["site_id"], unique=False)

    op.create_table(
        "rule_sets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_rule_sets_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_sets")),
        sa.UniqueConstraint("site_id", "version", name=op.f("uq_rule_sets_site_id_version")),
    )
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="new")
        )
        batch_op.add_column(
            sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("lost_reason", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("lost_note", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("score", sa.Float(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("temperature", sa.String(length=8), nullable=False, server_default="cold")
        )
        batch_op.add_column(sa.Column("score_state", JSON, nullable=True))
        batch_op.add_column(sa.Column("rule_set_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("scored_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("became_hot_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("contact_by", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("first_contacted_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_leads_site_id_score", ["site_id", "score"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index("ix_leads_site_id_score")
        batch_op.drop_column("first_contacted_at")
        batch_op.drop_column("contact_by")
        batch_op.drop_column("became_hot_at")
        batch_op.drop_column("scored_at")
        batch_op.drop_column("rule_set_version")
        batch_op.drop_column("score_state")
        batch_op.drop_column("temperature")
        batch_op.drop_column("score")
        batch_op.drop_column("lost_note")
        batch_op.drop_column("lost_reason")
        batch_op.drop_column("status_changed_at")
        batch_op.drop_column("status")

    op.drop_table("rule_sets")
    with op.batch_alter_table("rescore_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rescore_jobs_site_id"))

    op.drop_table("rescore_jobs")
