"""Webhook signing secrets at rest: only Fernet tokens in the database (read through SQL), the
migration that encrypts existing secrets (and the downgrade), a wrong key (a clear error,
never a bad signature), the SQLite key file, and PostgreSQL without a key."""

import asyncio
import logging
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from alembic import command
from cryptography.fernet import Fernet
from sqlalchemy import text
from standardwebhooks import Webhook

from app.config import Settings
from app.crypto import SecretBox, SecretsKeyError, secret_box
from app.db import utcnow
from app.main import create_app
from app.migrate import alembic_config, upgrade
from app.webhooks.delivery_loop import DeliveryService
from tests.factories import bearer
from tests.webhooks.conftest import webhook_settings
from tests.webhooks.helpers import add_endpoint, deliveries, queue_test

PLAIN = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ENDPOINT_ID, MESSAGE_ID, DELIVERY_ID = (uuid.uuid4() for _ in range(3))


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"run_background": False})


def _id(conn, value: object) -> str:
    """A uuid as the column holds it (SQLite: 32 hex digits)."""
    value = uuid.UUID(str(value))
    return str(value) if conn.dialect.name == "postgresql" else value.hex


async def raw_secrets(db_engine, endpoint_id: object) -> tuple[str, str | None]:
    """The columns as stored, through SQL (not the model)."""
    async with db_engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT secret_encrypted, previous_secret_encrypted FROM webhook_endpoints"
                    " WHERE id = :id"
                ),
                {"id": _id(conn, endpoint_id)},
            )
        ).one()
    return row[0], row[1]


async def test_the_stored_secret_is_never_the_plaintext(client, site, receiver, db_engine, box):
    endpoint = await add_endpoint(client, site, receiver.url)
    stored, previous = await raw_secrets(db_engine, endpoint["id"])
    assert endpoint["secret"] not in stored
    assert previous is None
    assert box.decrypt(stored) == endpoint["secret"]

    r = await client.post(f"/v1/webhooks/{endpoint['id']}/rotate", headers=bearer(site.secret_key))
    assert r.status_code == 200
    stored, previous = await raw_secrets(db_engine, endpoint["id"])
    assert r.json()["secret"] not in stored
    assert endpoint["secret"] not in (previous or "")
    assert box.decrypt(stored) == r.json()["secret"]
    assert box.decrypt(previous) == endpoint["secret"]


async def test_deliveries_are_signed_with_the_decrypted_secret(
    client, site, receiver, db_engine, box
):
    endpoint = await add_endpoint(client, site, receiver.url)
    await queue_test(client, site, endpoint)
    async with DeliveryService(db_engine, webhook_settings(), box) as worker:
        assert await worker.run_once() == 1
    [got] = receiver.received
    assert Webhook(endpoint["secret"]).verify(got.body, got.headers)["type"] == "webhook.test"


async def test_a_wrong_key_sends_nothing_and_says_why(
    client, site, receiver, db_engine, session, caplog, box
):
    endpoint = await add_endpoint(client, site, receiver.url)
    await queue_test(client, site, endpoint)
    wrong = SecretBox([Fernet.generate_key()], "LEADHEAT_SECRETS_KEY")
    with caplog.at_level(logging.ERROR, logger="app.webhooks.delivery_loop"):
        async with DeliveryService(db_engine, webhook_settings(lease_seconds=0), wrong) as w:
            assert await w.run_once() == 0
    assert receiver.received == []  # not sent with a bad (or no) signature
    assert "cannot be decrypted" in caplog.text
    assert endpoint["id"] in caplog.text
    [waiting] = await deliveries(session)
    assert (waiting.status, waiting.attempts) == ("pending", 0)  # not charged to the endpoint

    async with DeliveryService(db_engine, webhook_settings(), box) as worker:  # key fixed
        assert await worker.run_once() == 1
    Webhook(endpoint["secret"]).verify(receiver.received[0].body, receiver.received[0].headers)


def test_decrypting_with_another_key_is_a_clear_error() -> None:
    token = SecretBox([Fernet.generate_key()], "x").encrypt(PLAIN)
    with pytest.raises(SecretsKeyError, match="encrypted with another key"):
        SecretBox([Fernet.generate_key()], "LEADHEAT_SECRETS_KEY").decrypt(token)


def box_with(keys: str) -> SecretBox:
    """The service's box when LEADHEAT_SECRETS_KEY is `keys`."""
    return secret_box(Settings(database_url="sqlite+aiosqlite://", secrets_key=keys))


def test_several_keys_the_first_encrypts_all_decrypt() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = box_with(old).encrypt(PLAIN)
    both = box_with(f"{new}, {old}")
    assert both.decrypt(token) == PLAIN
    rotated = both.reencrypt(token)
    assert box_with(new).decrypt(rotated) == PLAIN
    with pytest.raises(SecretsKeyError, match="key 2 is not a Fernet key"):
        box_with(f"{new},not-a-key")


DECRYPT_IN_A_NEW_PROCESS = """
import sys
from app.config import Settings
from app.crypto import secret_box
url, token = sys.argv[1:]
print(secret_box(Settings(database_url=url, secrets_key=None)).decrypt(token))
"""


def test_sqlite_without_a_key_makes_a_key_file_once(tmp_path: Path, caplog) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/shop.db"
    with caplog.at_level(logging.WARNING, logger="app.crypto"):
        first = secret_box(Settings(database_url=url, secrets_key=None))
    key_file = tmp_path / "shop.db.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "Back it up with the database" in caplog.text
    token = first.encrypt(PLAIN)

    # A new process (the box is kept per process) reads the same key file, and says nothing.
    again = subprocess.run(
        [sys.executable, "-c", DECRYPT_IN_A_NEW_PROCESS, url, token],
        env={k: v for k, v in os.environ.items() if k != "LEADHEAT_SECRETS_KEY"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout == PLAIN + "\n"
    assert again.stderr == ""  # the warning was said once, when the file was made
    assert [p.name for p in tmp_path.iterdir()] == ["shop.db.key"]  # no temporary file left


async def test_postgresql_without_a_key_refuses_to_start(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite makes a key file")
    app = create_app(Settings(database_url=database_url, secrets_key=None))
    with pytest.raises(SecretsKeyError, match="Set LEADHEAT_SECRETS_KEY"):
        async with app.router.lifespan_context(app):
            pass


async def _migrate(database_url: str, direction: str, revision: str) -> None:
    # alembic's env runs its own event loop: in a thread
    await asyncio.to_thread(getattr(command, direction), alembic_config(database_url), revision)


@pytest.mark.hand_made_messages  # rows as the migration found them
async def test_the_migration_encrypts_existing_secrets_and_the_downgrade_decrypts(
    database_url, db_engine, site, box
):
    await _migrate(database_url, "downgrade", "0004")
    try:
        async with db_engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO webhook_endpoints (id, site_id, url, event_types, enabled,"
                    " consecutive_failures, secret, previous_secret, created_at, updated_at)"
                    " VALUES (:id, :site, 'http://x.example/h', '[]', true, 0, :s, NULL, :t, :t)"
                ),
                {
                    "id": _id(conn, ENDPOINT_ID),
                    "site": _id(conn, site.site.id),
                    "s": PLAIN,
                    "t": utcnow(),
                },
            )
            await conn.execute(
                text(
                    "INSERT INTO webhook_messages (id, site_id, event_type, payload, created_at)"
                    " VALUES (:m, :site, 'webhook.test', '{}', :t)"
                ),
                {"m": _id(conn, MESSAGE_ID), "site": _id(conn, site.site.id), "t": utcnow()},
            )
            await conn.execute(
                text(
                    "INSERT INTO webhook_deliveries (id, message_id, endpoint_id, status,"
                    " attempts, next_attempt_at, created_at) VALUES (:d, :m, :e, 'pending', 0,"
                    " :t, :t)"
                ),
                {
                    "d": _id(conn, DELIVERY_ID),
                    "m": _id(conn, MESSAGE_ID),
                    "e": _id(conn, ENDPOINT_ID),
                    "t": utcnow(),
                },
            )
        await _migrate(database_url, "upgrade", "head")
        stored, _ = await raw_secrets(db_engine, ENDPOINT_ID)
        assert stored != PLAIN
        assert box.decrypt(stored) == PLAIN
        async with db_engine.connect() as conn:  # the endpoint's deliveries are all still there
            assert await conn.scalar(text("SELECT count(*) FROM webhook_deliveries")) == 1

        await _migrate(database_url, "downgrade", "0004")
        async with db_engine.connect() as conn:
            assert await conn.scalar(text("SELECT secret FROM webhook_endpoints")) == PLAIN
    finally:
        await asyncio.to_thread(upgrade, database_url)


def test_cli_without_a_key_on_postgresql_says_what_to_set(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite makes a key file")
    from tests.test_cli import run_cli

    env = {"LEADHEAT_DATABASE_URL": database_url, "LEADHEAT_SECRETS_KEY": ""}
    result = run_cli("serve", "--no-migrate", "--port", "1", env=env)
    assert result.returncode == 2
    assert "Set LEADHEAT_SECRETS_KEY" in result.stderr
    assert "Traceback" not in result.stderr
    assert os.environ.get("LEADHEAT_SECRETS_KEY")  # the tests' own key is untouched


async def test_reencrypt_puts_every_secret_under_the_first_key(client, site, receiver, db_engine):
    from tests.test_cli import run_cli

    endpoint = await add_endpoint(client, site, receiver.url)
    await client.post(f"/v1/webhooks/{endpoint['id']}/rotate", headers=bearer(site.secret_key))
    old = os.environ["LEADHEAT_SECRETS_KEY"]
    new = Fernet.generate_key().decode()
    env = {"LEADHEAT_DATABASE_URL": str(db_engine.url.render_as_string(hide_password=False))}
    result = await asyncio.to_thread(
        run_cli, "secrets", "reencrypt", env={**env, "LEADHEAT_SECRETS_KEY": f"{new},{old}"}
    )
    assert result.returncode == 0, result.stderr
    assert "1 webhook endpoint" in result.stdout
    stored, previous = await raw_secrets(db_engine, endpoint["id"])
    only_new = SecretBox([new.encode()], "new")
    assert previous is not None
    assert only_new.decrypt(stored) != only_new.decrypt(previous)
    assert only_new.decrypt(previous) == endpoint["secret"]  # the old key can go now
