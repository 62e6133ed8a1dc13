"""The temperature refresher's due times and its lease.

`leads.next_check_at`: when a lead next shows differently with no new event (decay crossing a
threshold or moving the score a whole point, a hold ending), behind a partial index built
CONCURRENTLY on PostgreSQL (as in migrations 0008 and 0011), so that the refresher reads only
the leads whose time came. Leads that may change with time alone (warm and hot ones, and cold
ones with points to lose) are made due now, in batches that lock a few thousand rows at a
time; the refresher's first pass works out their real times. `leases`: the refresher runs
once per deployment, in the process holding its lease.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DUE = "next_check_at IS NOT NULL AND merged_into_id IS NULL"
MAY_CHANGE = (
    "merged_into_id IS NULL AND score_state IS NOT NULL AND (temperature <> 'cold' OR score >= 1)"
)
BATCH = 5000


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )
    op.add_column("leads", sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name != "postgresql":
        op.execute(f"UPDATE leads SET next_check_at = CURRENT_TIMESTAMP WHERE {MAY_CHANGE}")
        op.create_index(
            "ix_leads_next_check_at", "leads", ["next_check_at"], sqlite_where=sa.text(DUE)
        )
        return
    with op.get_context().autocommit_block():
        while True:
            done = op.get_bind().execute(
                sa.text(
                    "UPDATE leads SET next_check_at = now() WHERE id IN ("
                    f" SELECT id FROM leads WHERE next_check_at IS NULL AND {MAY_CHANGE}"
                    f" LIMIT {BATCH} FOR UPDATE SKIP LOCKED)"
                )
            )
            if done.rowcount == 0:
                break
        invalid = op.get_bind().scalar(
            sa.text("SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"),
            {"name": "ix_leads_next_check_at"},
        )
        if invalid:  # a failed concurrent build left it behind
            op.drop_index("ix_leads_next_check_at", "leads", postgresql_concurrently=True)
        op.create_index(
            "ix_leads_next_check_at",
            "leads",
            ["next_check_at"],
            postgresql_where=sa.text(DUE),
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index(
                "ix_leads_next_check_at",
                table_name="leads",
                postgresql_concurrently=True,
                if_exists=True,
            )
    else:
        op.drop_index("ix_leads_next_check_at", table_name="leads")
    op.drop_column("leads", "next_check_at")
    op.drop_table("leases")
