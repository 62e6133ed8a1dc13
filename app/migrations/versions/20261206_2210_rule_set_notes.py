"""`rule_sets.note` and `rule_sets.author`: why a version was published and by whom (a
person's email, or "secret key"). Nullable columns without a default: on PostgreSQL adding
them rewrites nothing; versions published before stay without either.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 22:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("rule_sets", sa.Column("note", sa.Text()))
    op.add_column("rule_sets", sa.Column("author", sa.String(length=320)))


def downgrade() -> None:
    with op.batch_alter_table("rule_sets") as batch:
        batch.drop_column("author")
        batch.drop_column("note")
