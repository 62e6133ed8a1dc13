"""The Telegram updates already handled, per bot: a redelivered update is acknowledged and
ignored.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "telegram_updates",
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["telegram_bots.site_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("site_id", "update_id"),
    )


def downgrade() -> None:
    op.drop_table("telegram_updates")
