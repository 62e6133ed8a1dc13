"""Notification channels: a delivery target's `kind` (webhook for every endpoint that exists)
and its person (`user_id`, null for the shop's webhooks and a site's team channel); a site's
Telegram bot, the deep-link codes that link a person's chat, the one-click links used.

`user_id` has no foreign key (people are deactivated, never deleted): on SQLite adding one
would copy `webhook_endpoints`, and dropping the old copy cascades to every delivery. Plain
ADD COLUMNs here, on both databases.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="webhook")
        )
        batch.add_column(sa.Column("user_id", sa.Uuid(), nullable=True))
        batch.create_index("ix_webhook_endpoints_user_id", ["user_id"])
    op.create_table(
        "telegram_bots",
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("token_encrypted", sa.Text(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("webhook_secret_hash", sa.String(length=64), nullable=True),
        sa.Column("update_offset", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("site_id"),
    )
    op.create_table(
        "channel_link_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("code_hash"),
    )
    op.create_index("ix_channel_link_codes_user_id", "channel_link_codes", ["user_id"])
    op.create_table(
        "used_action_links",
        sa.Column("link_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("link_id"),
    )


def downgrade() -> None:
    op.drop_table("used_action_links")
    op.drop_index("ix_channel_link_codes_user_id", table_name="channel_link_codes")
    op.drop_table("channel_link_codes")
    op.drop_table("telegram_bots")
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.drop_index("ix_webhook_endpoints_user_id")
        batch.drop_column("user_id")
        batch.drop_column("kind")
