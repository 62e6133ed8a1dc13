"""Running alembic migrations from code (`leadheat migrate`, `leadheat serve`, tests).

The migration scripts ship inside the package (`app/migrations`), so that an installed wheel
finds them; the repository's `alembic.ini` points developers' `alembic` commands at the same
directory.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    # No alembic.ini here: an installed package has none, and upgrading needs only these.
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply pending migrations. Blocking: call it outside a running event loop (or in a thread)."""
    command.upgrade(alembic_config(database_url), revision)
