"""Vacuum `leads` after 2% of its rows changed, not PostgreSQL's default 20%.

Every event updates its lead, and a re-scoring job rewrites every lead of a site, so `leads`
collects dead row versions quickly. The dashboard's counting reads (speed to lead, the funnel's
edges) are index-only scans, which stay index-only only while the visibility map is kept set,
that is while the table is vacuumed often; at 20% a site of 200k leads waited for 40k changed
rows, and meanwhile each such read visited the table for every row. Setting storage parameters
takes a lock that reads and writes do not wait for. SQLite has no vacuum daemon: nothing to do.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 19:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE leads SET (autovacuum_vacuum_scale_factor = 0.02,"
            " autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE leads RESET (autovacuum_vacuum_scale_factor,"
            " autovacuum_vacuum_insert_scale_factor, autovacuum_analyze_scale_factor)"
        )
