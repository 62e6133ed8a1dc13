"""Secrets at rest: webhook signing secrets are stored encrypted with Fernet (`cryptography`).

The key comes from `LEADHEAT_SECRETS_KEY`: one or more Fernet keys, comma separated. The
first encrypts, every one decrypts (MultiFernet), so a key is rotated by putting a new one
first, re-encrypting (`leadheat secrets reencrypt`), then dropping the old one.

Without a configured key:
- SQLite: a key file beside the database file (`<database>.key`, mode 0600) is made on first
  use and used from then on. It belongs with the database: back them up together.
- PostgreSQL: no key is made up. Replicas and fresh containers would each make their own and
  could not read each other's secrets; the service refuses to start and says what to set.
"""

import base64
import binascii
import hashlib
import hmac
import logging
import os
import tempfile
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.engine import make_url

from app.config import Settings

logger = logging.getLogger(__name__)

KEY_SETTING = "LEADHEAT_SECRETS_KEY"
GENERATE_HINT = (
    "make one with: python -c 'from cryptography.fernet import Fernet; "
    "print(Fernet.generate_key().decode())'"
)


class SecretsKeyError(RuntimeError):
    """No usable key, or a stored secret that the configured key cannot decrypt."""


class SecretBox:
    """Encrypts and decrypts short secrets (text) with the configured keys."""

    def __init__(self, keys: list[bytes], source: str) -> None:
        self.source = source  # where the keys came from, for error messages
        self._keys = list(keys)
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def derived_keys(self, purpose: str) -> list[bytes]:
        """A key per configured key for another use (`purpose`: signing links), the current
        one first: no second secret to configure, and a key rotation rotates them too."""
        return [hmac.new(key, purpose.encode(), hashlib.sha256).digest() for key in self._keys]

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise self._wrong_key() from exc

    def reencrypt(self, token: str) -> str:
        """The same secret under the first (current) key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken as exc:
            raise self._wrong_key() from exc

    def _wrong_key(self) -> "SecretsKeyError":
        return SecretsKeyError(
            f"A stored secret cannot be decrypted with the key from {self.source}: it was "
            "encrypted with another key. Configure the key it was encrypted with (several "
            f"keys may be given in {KEY_SETTING}, comma separated)."
        )


def parse_keys(raw: str, source: str = KEY_SETTING) -> list[bytes]:
    keys = [part.strip().encode() for part in raw.split(",") if part.strip()]
    if not keys:
        raise SecretsKeyError(f"{source} is empty; {GENERATE_HINT}")
    for number, key in enumerate(keys, 1):
        try:
            valid = len(base64.urlsafe_b64decode(key)) == 32
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            raise SecretsKeyError(
                f"{source}: key {number} is not a Fernet key (32 bytes, url-safe base64); "
                + GENERATE_HINT
            )
    return keys


def key_file_for(database_url: str) -> Path | None:
    """`<database file>.key` for a file SQLite database; None for anything else."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database + ".key")


def _read_or_create_key_file(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    # Written whole to a temporary file, then linked into place: two processes starting at
    # once (serve's workers) end up with one key, and no one reads a half-written file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_bytes().strip()
    finally:
        os.unlink(tmp)
    logger.warning(
        "Created %s, the key that encrypts webhook secrets in this database. Back it up with "
        "the database: without it, the webhook secrets cannot be read (or set %s).",
        path,
        KEY_SETTING,
    )
    return path.read_bytes().strip()


@lru_cache(maxsize=32)
def _box(configured: str | None, database_url: str) -> SecretBox:
    if configured:
        return SecretBox(parse_keys(configured), KEY_SETTING)
    path = key_file_for(database_url)
    if path is not None:
        return SecretBox(parse_keys(_read_or_create_key_file(path).decode(), str(path)), str(path))
    if make_url(database_url).get_backend_name() == "sqlite":  # in memory: lives as long
        return SecretBox([Fernet.generate_key()], "a key kept in memory")
    raise SecretsKeyError(
        f"Set {KEY_SETTING}: with PostgreSQL, webhook secrets are encrypted with a key you "
        f"give (the same on every replica, kept out of the database); {GENERATE_HINT}"
    )


def secret_box(settings: Settings) -> SecretBox:
    """The box for these settings (one per key and database, per process)."""
    key = settings.secrets_key.get_secret_value() if settings.secrets_key else None
    return _box(key, settings.database_url)
