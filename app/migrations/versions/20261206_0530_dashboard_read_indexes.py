"""Indexes for the dashboard's reads of leads: the list by recency (and its cursor), the funnel,
speed to lead, and a lead's merged leads. Without them each of these reads every lead.

Built CONCURRENTLY on PostgreSQL, so that ingestion keeps writing leads meanwhile; outside the
migration's transaction (CREATE INDEX CONCURRENTLY cannot run in one), and IF NOT EXISTS, so a
rerun after a failed build goes on. A failed concurrent build leaves an INVALID index behind
that IF NOT EXISTS would keep: it is dropped first.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "merged_into_id IS NULL"
HOT_LIVE = "became_hot_at IS NOT NULL AND merged_into_id IS NULL"
AWAITING_CONTACT = (
    "contact_by IS NOT NULL AND first_contacted_at IS NULL AND merged_into_id IS NULL"
)


def _indexes(dialect: str) -> list[tuple[str, list[str], str]]:
    # SQLite sorts NULLs first ascending, so last in a DESC index, and has no NULLS LAST there.
    recent = "last_seen_at DESC NULLS LAST" if dialect == "postgresql" else "last_seen_at DESC"
    return [
        ("ix_leads_site_id_last_seen_at", ["site_id", recent, "id DESC"], LIVE),
        ("ix_leads_site_id_first_seen_at", ["site_id", "first_seen_at"], LIVE),
        ("ix_leads_site_id_became_hot_at", ["site_id", "became_hot_at"], HOT_LIVE),
        ("ix_leads_site_id_contact_by", ["site_id", "contact_by"], AWAITING_CONTACT),
        ("ix_leads_merged_into_id", ["merged_into_id"], "merged_into_id IS NOT NULL"),
    ]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    indexes = _indexes(dialect)
    if dialect != "postgresql":
        for name, columns, where in indexes:
            op.create_index(
                name, "leads", [sa.text(c) for c in columns], sqlite_where=sa.text(where)
            )
        return
    with op.get_context().autocommit_block():
        for name, columns, where in indexes:
            invalid = op.get_bind().scalar(
                sa.text(
                    "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"
                ),
                {"name": name},
            )
            if invalid:
                op.drop_index(name, table_name="leads", postgresql_concurrently=True)
            op.create_index(
                name,
                "leads",
                [sa.text(c) for c in columns],
                postgresql_where=sa.text(where),
                postgresql_concurrently=True,
                if_not_exists=True,
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    names = [name for name, _, _ in _indexes(dialect)]
    if dialect != "postgresql":
        for name in names:
            op.drop_index(name, table_name="leads")
        return
    with op.get_context().autocommit_block():
        for name in names:
            op.drop_index(name, table_name="leads", postgresql_concurrently=True, if_exists=True)
