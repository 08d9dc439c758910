"""Engine and session handling, so every caller gets the same SQL setup on SQLite and PostgreSQL.

SQLite is the embedded default and needs per-connection pragmas (WAL, foreign keys, busy timeout);
PostgreSQL is production and only needs its pooled connections checked after they sat idle.
Datetimes are always stored and returned as timezone-aware UTC values on both backends through
`UTCDateTime`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session

DATABASE_URL_ENV = "DTI_DATABASE_URL"

SQLITE_PRAGMAS: tuple[tuple[str, str], ...] = (
    ("journal_mode", "WAL"),
    ("foreign_keys", "ON"),
    ("busy_timeout", "5000"),
    ("synchronous", "NORMAL"),
)


def utcnow() -> datetime:
    """The current time as a timezone-aware UTC datetime (the default for every timestamp column)."""
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp column that only accepts aware datetimes and always returns aware UTC datetimes.

    PostgreSQL stores `timestamptz` natively; SQLite has no time zone support and silently drops the
    offset, so values are converted to UTC before writing and tagged as UTC after reading. Naive
    datetimes are refused on write because their meaning is ambiguous.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime; pass a timezone-aware value")
        utc = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return utc.replace(tzinfo=None)
        return utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def database_url() -> str:
    """The database URL: `DTI_DATABASE_URL`, else the SQLite file `dti.db` in the working directory."""
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    if url:
        return url
    return f"sqlite:///{Path.cwd() / 'dti.db'}"


def normalize_url(url: str) -> str:
    """`url` with PostgreSQL pointed at the installed psycopg 3 driver (`postgres://` and `postgresql://`
    would otherwise select psycopg2, which is not a dependency)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for any other database, or one in memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if parsed.database.startswith("file:") or parsed.query.get("mode") == "memory":
        return None
    return Path(parsed.database)


def _set_sqlite_pragmas(dbapi_connection: Any, connection_record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for name, value in SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {name}={value}")
    finally:
        cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for `url` with the per-backend settings; extra keyword arguments go to SQLAlchemy."""
    url = normalize_url(url)
    if is_sqlite(url):
        engine = sa.create_engine(url, **kwargs)
        event.listen(engine, "connect", _set_sqlite_pragmas)
        return engine
    engine = sa.create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):  # unless asked for a ping on every checkout
        _ping_when_idle(engine)
    return engine


# A pooled connection that sat unused longer than this gets a round trip before it is handed out: the
# server may have restarted meanwhile, and a dead connection is then replaced unseen. One in steady use
# is not pinged: under load SQLAlchemy's pre-ping on every checkout is one more round trip per
# transaction (its cost is in bench/RESULTS.md).
# A connection that dies between two closer uses fails its first statement instead, which tells the
# pool to drop every connection of that age; callers retry (bot/service.py: ATTEMPTS).
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    def idle_from_now(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    def checked_out(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        since = record.info.get("idle_since", 0.0)
        if time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DisconnectionError(f"ping after idle failed: {exc}") from exc

    event.listen(engine, "connect", idle_from_now)
    event.listen(engine, "checkin", idle_from_now)
    event.listen(engine, "checkout", checked_out)


class NotMigrated(RuntimeError):
    """The database schema is not at the Alembic head (`current` is None for an empty database)."""

    def __init__(self, current: str | None, head: str) -> None:
        super().__init__(current, head)
        self.current = current
        self.head = head


class Database:
    """An engine plus a transactional session factory; one `Database` per process and URL."""

    def __init__(self, url: str | None = None, engine: Engine | None = None) -> None:
        if engine is None:
            engine = make_engine(url if url is not None else database_url())
        self.engine = engine

    @property
    def url(self) -> str:
        """The full URL, password included: mask it before showing it to anyone."""
        return self.engine.url.render_as_string(hide_password=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: commit when the block ends normally, roll everything back on an exception.

        Objects stay usable after the block (`expire_on_commit=False`), detached from the session.
        """
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def require_current(self) -> None:
        """Raise `NotMigrated` unless the schema is exactly at the Alembic head."""
        from storage import migrate  # migrate imports this module for make_engine

        head = migrate.head()
        with self.engine.connect() as connection:
            current = migrate.current_revision(connection)
        if current != head:
            raise NotMigrated(current, head)

    def dispose(self) -> None:
        self.engine.dispose()
