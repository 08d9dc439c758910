"""The database locked or gone in the middle of a conversation: the bot retries, tells the user to send
again when it must, and neither loses nor half-stores anything.

SQLite: another connection holds the write lock (a backup, a long admin command) — briefly, then for
longer than the retries last. PostgreSQL: every connection of the bot is cut; then a private server
is stopped and started again, briefly and for longer than the retries last.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from flows.model import Mode
from storage.db import Database
from tests.e2e_support import make_province

UNAVAILABLE = "chưa lưu được tin nhắn vừa rồi"


def _short_busy_wait(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA busy_timeout=100")  # after the default pragmas: keeps the test short


def test_a_locked_sqlite_database_is_waited_for_then_the_user_is_asked_to_resend(tmp_path: Path) -> None:
    from storage import migrate

    path = tmp_path / "locked.db"
    migrate.upgrade(f"sqlite:///{path}")
    db = Database(f"sqlite:///{path}")
    event.listen(db.engine, "connect", _short_busy_wait)
    p = make_province(db, tmp_path)
    chat, out = p.chat("k1")
    chat.service.backoff = (0.3,)
    chat.run([p.invite("25840", "respondent"), "70,4"])
    assert p.session_state("k1").mode is Mode.EVIDENCE

    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.2, lambda: holder.execute("COMMIT"))
    release.start()  # a short lock: the retry gets through
    chat.run(["để sau"])
    release.join()
    assert UNAVAILABLE not in out.getvalue() and "Câu 2/62" in out.getvalue()

    holder.execute("BEGIN EXCLUSIVE")  # a long one: outlasts every retry
    before = out.getvalue()
    chat.run(["50"])
    said = out.getvalue()[len(before) :]
    assert UNAVAILABLE in said and "gửi lại" in said
    holder.execute("COMMIT")
    holder.close()
    state = p.session_state("k1")
    assert state.current == "1.2" and not [r for r in p.revisions("25840") if r.indicator_code == "1.2"]
    chat.run(["50"])  # sent again: stored once
    assert [r.indicator_code for r in p.revisions("25840")].count("1.2") == 1
    db.dispose()


def test_postgresql_connections_cut_mid_conversation(db: Database, tmp_path: Path) -> None:
    """Every connection of the bot is terminated between two messages (a server restart as the bot
    sees it); the next message is still handled, once."""
    if db.engine.dialect.name != "postgresql":
        return  # the SQLite variant is the test above
    p = make_province(db, tmp_path)
    chat, out = p.chat("k1")
    chat.run([p.invite("25840", "respondent"), "70,4", "để sau"])
    admin = sa.create_engine(db.url, poolclass=sa.pool.NullPool)
    with admin.connect() as connection:
        cut = connection.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    admin.dispose()
    assert cut >= 1
    before = out.getvalue()
    chat.run(["50"])
    said = out.getvalue()[len(before) :]
    assert UNAVAILABLE not in said, said
    assert "Gửi minh chứng cho 1.2" in said
    assert [r.indicator_code for r in p.revisions("25840")].count("1.2") == 1


POSTGRES_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


class PrivateCluster:
    """A throwaway PostgreSQL server of our own, so the test may stop and start it like an operator
    restarting production, without touching the shared test server."""

    def __init__(self) -> None:
        self.bin = POSTGRES_BIN[-1]
        self.dir = Path(tempfile.mkdtemp(prefix="dti-pg-"))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.as_postgres = os.geteuid() == 0  # the server refuses to run as root
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.dir / "data"), "-U", "postgres", "--auth=trust", "--no-sync")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-o", options, "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_cluster() -> Iterator[PrivateCluster]:
    if not os.environ.get("DTI_TEST_POSTGRES_URL"):
        pytest.skip("PostgreSQL suite: set DTI_TEST_POSTGRES_URL")
    if not POSTGRES_BIN or (os.geteuid() == 0 and shutil.which("runuser") is None):
        pytest.skip("no PostgreSQL server binaries to run a private server")
    cluster = PrivateCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


def test_postgresql_server_stopped_and_restarted_mid_conversation(
    private_cluster: PrivateCluster, tmp_path: Path
) -> None:
    """The server goes down between two messages: a restart within the retries is invisible to the
    user; a longer outage gets "send again" and nothing half-stored; after it every answer is stored
    once and the conversation goes on where it was."""
    from storage import migrate

    migrate.upgrade(private_cluster.url)
    db = Database(private_cluster.url)
    p = make_province(db, tmp_path)
    chat, out = p.chat("k1")
    chat.run([p.invite("25840", "respondent"), "70,4", "để sau"])
    assert p.session_state("k1").current == "1.2"

    private_cluster.stop()
    restart = threading.Timer(1.0, private_cluster.start)
    restart.start()  # back within the retries (0.5 + 1 + 1 + 2 s)
    chat.service.backoff = (0.5, 1.0, 1.0, 2.0)
    before = out.getvalue()
    chat.run(["50"])
    restart.join()
    said = out.getvalue()[len(before) :]
    assert UNAVAILABLE not in said and "Gửi minh chứng cho 1.2" in said, said

    private_cluster.stop()  # down for longer than the retries last
    chat.service.backoff = (0.05,)
    before = out.getvalue()
    chat.run(["để sau"])
    said = out.getvalue()[len(before) :]
    assert UNAVAILABLE in said and "gửi lại" in said, said

    private_cluster.start()
    assert p.session_state("k1").mode is Mode.EVIDENCE  # the unacknowledged message changed nothing
    before = out.getvalue()
    chat.run(["để sau"])  # sent again
    assert "Câu 3/62" in out.getvalue()[len(before) :]
    codes = [r.indicator_code for r in p.revisions("25840")]
    assert codes.count("1.1") == 1 and codes.count("1.2") == 1
    assert p.session_state("k1").current == "1.3"
    db.dispose()
