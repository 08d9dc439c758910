"""Alembic driven from code, so the schema can be upgraded and checked without an alembic.ini file.

The migration scripts live in `storage/migrations/`; `upgrade()` is what `dtibot db upgrade` runs and
`Database.require_current()` compares `current_revision()` with `head()` before the app starts.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from storage.db import make_engine, normalize_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class MigrationForeignKeyViolation(RuntimeError):
    """A SQLite migration left rows pointing at missing parents.

    `violations` are the rows of `PRAGMA foreign_key_check`: (table, rowid, parent table, foreign key
    index). SQLite DDL is not transactional here, so the migration itself is already applied; the data
    must be repaired by hand before the app is used.
    """

    def __init__(self, violations: list[tuple[object, ...]]) -> None:
        super().__init__(violations)
        self.violations = violations


def alembic_config(url: str) -> Config:
    """An Alembic configuration for `url` using the packaged migration scripts.

    Usable with any `alembic.command` function, e.g. `command.upgrade(config, "head", sql=True)` writes
    the SQL to `config.output_buffer` (default stdout) instead of running it.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation: a literal "%" (e.g. in an encoded password) must be doubled.
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def _script_directory() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config)


def head() -> str:
    """The newest revision id of the migration scripts."""
    revision = _script_directory().get_current_head()
    if revision is None:  # pragma: no cover - the package always ships migrations
        raise RuntimeError("no migration scripts found")
    return revision


def current_revision(connection: Connection) -> str | None:
    """The revision the database on `connection` is at, or None if it was never migrated."""
    return MigrationContext.configure(connection).get_current_revision()


def current(url: str) -> str | None:
    """The revision of the database at `url`, or None if it was never migrated (or does not exist yet)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return current_revision(connection)
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` up to `revision`; a new SQLite file is created if needed."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at `url` down to `revision` ("base" drops every table)."""
    command.downgrade(alembic_config(url), revision)
