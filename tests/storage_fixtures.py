"""Database fixtures shared by the storage tests: the same test runs on SQLite and on PostgreSQL.

Load with `pytest_plugins = ["tests.storage_fixtures"]` in a test module (and do not import this module
there as well). PostgreSQL variants skip unless `DTI_TEST_POSTGRES_URL` points at a server; each test
session then works in its own freshly created database `dti_t_<hex>` (dropped at the end), and tests
that need an empty schema get one of their own.
Schemas are only ever built by the Alembic migrations, never by `create_all`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

from storage import migrate
from storage.db import Database

POSTGRES_ENV = "DTI_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def postgres_admin_url() -> str:
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    return url


def _admin_engine(admin_url: str) -> sa.Engine:
    return sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)


def create_postgres_database(admin_url: str) -> str:
    """Create a uniquely named empty database next to `admin_url`'s and return its URL."""
    name = f"dti_t_{secrets.token_hex(6)}"
    engine = _admin_engine(admin_url)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(admin_url: str, url: str) -> None:
    """Terminate every connection to the database of `url`, then drop it."""
    name = make_url(url).database
    assert name is not None and name.startswith("dti_t_")
    engine = _admin_engine(admin_url)
    try:
        with engine.connect() as connection:
            connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        engine.dispose()


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'dti.db'}"


@pytest.fixture(scope="session")
def migrated_postgres_url() -> Iterator[str]:
    """One migrated PostgreSQL database for the whole session (tables are emptied after each test)."""
    admin_url = postgres_admin_url()
    url = create_postgres_database(admin_url)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        drop_postgres_database(admin_url, url)


def _truncate_all(database: Database) -> None:
    tables = ", ".join(f'"{table.name}"' for table in SQLModel.metadata.sorted_tables)
    with database.engine.begin() as connection:
        connection.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "postgres":
        postgres_admin_url()
    return name


@pytest.fixture
def empty_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with no tables at all (a fresh PostgreSQL database or a new SQLite path)."""
    if backend == "sqlite":
        yield sqlite_url(tmp_path)
        return
    admin_url = postgres_admin_url()
    url = create_postgres_database(admin_url)
    try:
        yield url
    finally:
        drop_postgres_database(admin_url, url)


@pytest.fixture
def db(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Database]:
    """A migrated, empty database on each backend."""
    if backend == "sqlite":
        url = sqlite_url(tmp_path)
        migrate.upgrade(url)
        database = Database(url)
        try:
            yield database
        finally:
            database.dispose()
        return
    url = request.getfixturevalue("migrated_postgres_url")
    database = Database(url)
    try:
        yield database
    finally:
        _truncate_all(database)
        database.dispose()


def bench_databases(tmp: Path, postgres: str | None) -> Iterator[tuple[str, str]]:
    """For a benchmark: SQLite in `tmp`, then a scratch PostgreSQL database (dropped afterwards) when a
    URL is given; prints each one's name as it starts."""
    for name, url in (("SQLite (WAL)", f"sqlite:///{tmp / 'bench.db'}"), ("PostgreSQL", postgres)):
        if not url:
            print(f"{name}: skipped (no --postgres URL)")
            continue
        print(f"{name}:")
        scratch = create_postgres_database(url) if name == "PostgreSQL" else url
        try:
            yield name, scratch
        finally:
            if scratch != url:
                drop_postgres_database(url, scratch)
