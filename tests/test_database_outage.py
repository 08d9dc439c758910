"""The database locked or gone in the middle of a conversation: the bot retries, tells the user to send
again when it must, and neither loses nor half-stores anything.

SQLite: another connection holds the write lock (a backup, a long admin command) — briefly, then for
longer than the retries last. PostgreSQL: every connection of the bot is cut, as a server restart does.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

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
