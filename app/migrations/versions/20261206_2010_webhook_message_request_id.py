"""`webhook_messages.request_id`: the HTTP request(s) that caused a message, which its
delivery attempts log (app.logs), so that a request can be followed to its webhooks.

A nullable column without a default: on PostgreSQL adding it rewrites nothing.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("webhook_messages", sa.Column("request_id", sa.String(length=300)))


def downgrade() -> None:
    with op.batch_alter_table("webhook_messages") as batch:
        batch.drop_column("request_id")
