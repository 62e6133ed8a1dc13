"""Webhook signing secrets encrypted at rest: `secret` and `previous_secret` become
`secret_encrypted` and `previous_secret_encrypted` (Fernet tokens, app.crypto), and the
secrets stored so far are encrypted (the downgrade decrypts them).

The key is read as the service reads it (LEADHEAT_SECRETS_KEY, or on SQLite the key file
beside the database); it is only needed when there are secrets to convert.

The columns are renamed in place, also on SQLite (RENAME COLUMN, SQLite 3.25+), not by batch
mode's copy of the table: with foreign keys enforced, dropping the old table would cascade
and delete every delivery and attempt of the endpoints. SQLite keeps the declared
VARCHAR(100), which it does not enforce; PostgreSQL's columns become TEXT (a token is ~164
characters).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 23:00:00
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

from app.config import Settings
from app.crypto import SecretBox, secret_box

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RENAMES = [("secret", "secret_encrypted"), ("previous_secret", "previous_secret_encrypted")]


def _rename(pairs: list[tuple[str, str]]) -> None:
    for old, new in pairs:
        op.execute(f"ALTER TABLE webhook_endpoints RENAME COLUMN {old} TO {new}")


def _set_type(type_: sa.types.TypeEngine, existing: sa.types.TypeEngine) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for column, nullable in (("secret_encrypted", False), ("previous_secret_encrypted", True)):
        op.alter_column(
            "webhook_endpoints",
            column,
            type_=type_,
            existing_type=existing,
            existing_nullable=nullable,
        )


def _convert(change: Callable[[SecretBox, str], str]) -> None:
    """Apply `change` to every stored secret (new column names)."""
    bind = op.get_bind()
    table = sa.table(
        "webhook_endpoints",
        sa.column("id", sa.Uuid()),
        sa.column("secret_encrypted", sa.Text()),
        sa.column("previous_secret_encrypted", sa.Text()),
    )
    rows = bind.execute(
        sa.select(table.c.id, table.c.secret_encrypted, table.c.previous_secret_encrypted)
    ).all()
    if not rows:
        return
    url = bind.engine.url.render_as_string(hide_password=False)
    box = secret_box(Settings(database_url=url))
    for endpoint_id, secret, previous in rows:
        bind.execute(
            sa.update(table)
            .where(table.c.id == endpoint_id)
            .values(
                secret_encrypted=change(box, secret),
                previous_secret_encrypted=change(box, previous) if previous else None,
            )
        )


def upgrade() -> None:
    _rename(RENAMES)
    _set_type(sa.Text(), sa.String(length=100))
    _convert(SecretBox.encrypt)


def downgrade() -> None:
    _convert(SecretBox.decrypt)
    _set_type(sa.String(length=100), sa.Text())
    _rename([(new, old) for old, new in RENAMES])
