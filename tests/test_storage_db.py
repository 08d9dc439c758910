"""Engine, migrations, schema and transactions of `storage`, run on SQLite and (if configured) PostgreSQL."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError
from sqlmodel import Session, SQLModel, col, func, select

import storage.db
from storage import migrate
from storage.db import Database, NotMigrated, database_url, make_engine, normalize_url
from storage.models import (
    AnswerRevision,
    Assessment,
    AuditLog,
    Conversation,
    Evidence,
    Invite,
    JoinAttempt,
    Member,
    Outbox,
    Period,
    ProcessedInbound,
    Unit,
)

ICT = timezone(timedelta(hours=7))  # Vietnam time, UTC+7
LATER = datetime(2026, 1, 1, tzinfo=UTC)


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'dti.db'}"


def schema_diff(database: Database) -> list[object]:
    with database.engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), SQLModel.metadata))


def seed(session: Session) -> tuple[Unit, Period, Member, Assessment]:
    unit = Unit(code="25840", name="Xã Thử", level="commune")
    period = Period(name="2025", year=2025, framework_id="tay-ninh-commune-2025", framework_version="1")
    session.add(unit)
    session.add(period)
    session.flush()
    assert unit.id is not None and period.id is not None
    member = Member(channel="telegram", chat_id="100", unit_id=unit.id, role="respondent")
    assessment = Assessment(period_id=period.id, unit_id=unit.id)
    session.add(member)
    session.add(assessment)
    session.flush()
    return unit, period, member, assessment


def count(database: Database, model: type[SQLModel]) -> int:
    with database.session() as session:
        return session.exec(select(func.count()).select_from(model)).one()


# -- migrations ------------------------------------------------------------------------------------------


HEAD = "0012"


def test_upgrade_0001_to_0002_keeps_rows(empty_url: str) -> None:
    migrate.upgrade(empty_url, "0001")
    engine = make_engine(empty_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO outbox (channel, chat_id, payload_json, priority, status, created_at,"
                    " attempts) VALUES ('telegram', '42', '{}', 0, 'pending', :now, 0)"
                ),
                {"now": datetime(2026, 11, 21, tzinfo=UTC)},
            )
        migrate.upgrade(empty_url)
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT chat_id, status, claimed_at, external_id FROM outbox")
            ).all()
        assert [tuple(r) for r in rows] == [("42", "pending", None, None)]
        migrate.downgrade(empty_url, "0001")
        assert migrate.current(empty_url) == "0001"
    finally:
        engine.dispose()


NEW_MEMBER = (
    "INSERT INTO member (channel, chat_id, unit_id, role, language, created_at, paused_reminders)"
    " VALUES ('telegram', '7', 1, '{role}', 'vi', :now, false)"
)


def test_upgrade_0008_to_0009_names_invites_by_id_and_lets_a_removed_chat_join_again(empty_url: str) -> None:
    migrate.upgrade(empty_url, "0008")
    engine = make_engine(empty_url)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO unit (code, name, level, created_at) VALUES ('1', 'Xã', 'commune', :now)"
                ),
                {"now": now},
            )
            for code, minutes in (("SECOND22", 5), ("FIRST333", 1)):
                connection.execute(
                    sa.text(
                        "INSERT INTO invite (code, unit_id, role, created_at, expires_at)"
                        " VALUES (:code, 1, 'respondent', :at, :at)"
                    ),
                    {"code": code, "at": now + timedelta(minutes=minutes)},
                )
            connection.execute(
                sa.text(NEW_MEMBER.format(role="respondent")),
                {"now": now},
            )
        migrate.upgrade(empty_url)
        with engine.begin() as connection:
            invites = connection.execute(sa.text("SELECT id, code FROM invite ORDER BY id")).all()
            assert [tuple(r) for r in invites] in (
                [(1, "FIRST333"), (2, "SECOND22")],
                [(1, "SECOND22"), (2, "FIRST333")],
            )
            connection.execute(sa.text("UPDATE member SET removed_at = :now"), {"now": now})
            connection.execute(
                sa.text(NEW_MEMBER.format(role="leader")),
                {"now": now},
            )
        with pytest.raises(IntegrityError), engine.begin() as connection:  # one member per chat not removed
            connection.execute(
                sa.text(NEW_MEMBER.format(role="leader")),
                {"now": now},
            )
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO invite (code, unit_id, role, created_at, expires_at)"
                    " VALUES ('NEW44444', 1, 'leader', :now, :now)"
                ),
                {"now": now},
            )
            assert connection.execute(sa.text("SELECT id FROM invite WHERE code = 'NEW44444'")).scalar() == 3
    finally:
        engine.dispose()


def test_upgrade_from_empty_to_head_and_back(empty_url: str) -> None:
    assert migrate.head() == HEAD
    assert migrate.current(empty_url) is None
    database = Database(empty_url)
    try:
        with pytest.raises(NotMigrated) as raised:
            database.require_current()
        assert raised.value.current is None
        assert raised.value.head == HEAD

        migrate.upgrade(empty_url)
        assert migrate.current(empty_url) == HEAD
        database.require_current()
        assert schema_diff(database) == []

        migrate.downgrade(empty_url, "base")
        assert migrate.current(empty_url) is None
        assert set(sa.inspect(database.engine).get_table_names()) <= {"alembic_version"}
        with pytest.raises(NotMigrated):
            database.require_current()

        migrate.upgrade(empty_url)
        database.require_current()
    finally:
        database.dispose()


def test_schema_comparison_notices_a_missing_index(empty_url: str) -> None:
    """Guards the metadata test itself: a real difference between models and database is reported."""
    migrate.upgrade(empty_url)
    database = Database(empty_url)
    try:
        with database.engine.begin() as connection:
            connection.exec_driver_sql("DROP INDEX ix_outbox_status_priority_id")
        diff = schema_diff(database)
        assert [entry[0] for entry in diff if isinstance(entry, tuple)] == ["add_index"]
    finally:
        database.dispose()


def test_models_match_migrations(db: Database) -> None:
    db.require_current()
    assert schema_diff(db) == []
    tables = set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}
    assert tables == set(SQLModel.metadata.tables)


def test_alembic_config_escapes_percent_signs() -> None:
    url = "postgresql+psycopg://user:p%40ss@host/db"
    assert migrate.alembic_config(url).get_main_option("sqlalchemy.url") == url


def test_offline_sql_script() -> None:
    """`dtibot db upgrade --sql` style: SQL for a DBA, generated without connecting to anything."""
    config = migrate.alembic_config("postgres://dba@db.invalid/dti")
    config.output_buffer = io.StringIO()
    command.upgrade(config, "head", sql=True)
    script = config.output_buffer.getvalue()
    assert "CREATE TABLE unit" in script and "TIMESTAMP WITH TIME ZONE" in script
    assert "INSERT INTO alembic_version (version_num) VALUES ('0001')" in script


def test_not_migrated_carries_data() -> None:
    error = NotMigrated("0000", "0001")
    assert (error.current, error.head) == ("0000", "0001")
    assert isinstance(error, RuntimeError)


# -- engine ----------------------------------------------------------------------------------------------


def test_database_url_default_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DTI_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert database_url() == f"sqlite:///{tmp_path / 'dti.db'}"
    monkeypatch.setenv("DTI_DATABASE_URL", "postgresql+psycopg://u@h/d")
    assert database_url() == "postgresql+psycopg://u@h/d"


def test_postgres_urls_use_psycopg3() -> None:
    assert normalize_url("postgres://u:p@h:5432/d") == "postgresql+psycopg://u:p@h:5432/d"
    assert normalize_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            pragmas = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
            }
        # synchronous 1 is NORMAL
        assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 5000, "synchronous": 1}
    finally:
        engine.dispose()


def _backend(db: Database) -> int:
    with db.session() as s:
        return int(s.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


def _terminate(url: str, pid: int) -> None:
    admin = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with admin.connect() as connection:
        connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()


@pytest.mark.postgres
def test_a_pooled_connection_is_pinged_only_after_sitting_idle(
    migrated_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In steady use a connection goes straight back to work; after an idle spell it is checked first,
    and one the server dropped meanwhile (a restart) is replaced before anyone sees it."""
    db = Database(migrated_postgres_url)
    pings: list[int] = []
    ping = db.engine.dialect.do_ping
    monkeypatch.setattr(db.engine.dialect, "do_ping", lambda c: pings.append(1) or ping(c))
    try:
        first = _backend(db)
        assert _backend(db) == first and pings == []  # used again at once: no round trip
        _terminate(migrated_postgres_url, first)
        monkeypatch.setattr(storage.db, "PING_AFTER_IDLE_SECONDS", 0.0)
        replaced = _backend(db)  # the ping finds it dead: a new connection, no error
        assert replaced != first and len(pings) == 2  # the failed ping, then the new connection's
    finally:
        db.dispose()


@pytest.mark.postgres
def test_a_connection_dropped_between_close_uses_fails_once_then_the_pool_renews(
    migrated_postgres_url: str,
) -> None:
    """Without the ping, the first statement on a dead connection raises (callers retry, as
    bot/service.py does) and the pool then drops every connection as old as it."""
    db = Database(migrated_postgres_url)
    try:
        first = _backend(db)
        _terminate(migrated_postgres_url, first)
        with pytest.raises(OperationalError) as failed:
            _backend(db)
        assert failed.value.connection_invalidated
        assert _backend(db) != first
    finally:
        db.dispose()


def test_foreign_key_violation_is_refused(db: Database) -> None:
    with pytest.raises(IntegrityError), db.session() as session:
        session.add(Member(channel="telegram", chat_id="1", unit_id=9999, role="respondent"))
    with pytest.raises(IntegrityError), db.session() as session:
        session.add(Unit(code="1", name="x", level="commune", parent_id=4242))
    assert count(db, Member) == 0
    assert count(db, Unit) == 0


# -- datetimes -------------------------------------------------------------------------------------------


def test_datetimes_round_trip_as_aware_utc(db: Database) -> None:
    local = datetime(2025, 3, 1, 8, 30, 15, 123456, tzinfo=ICT)
    with db.session() as session:
        period = Period(
            name="2025",
            year=2025,
            framework_id="f",
            framework_version="1",
            opened_at=local,
            self_assessment_due=datetime(2025, 6, 30, 23, 59, tzinfo=UTC),
        )
        session.add(period)
    with db.session() as session:
        loaded = session.exec(select(Period)).one()
        assert loaded.opened_at == local
        assert loaded.opened_at.tzinfo is UTC
        assert loaded.opened_at == datetime(2025, 3, 1, 1, 30, 15, 123456, tzinfo=UTC)
        assert loaded.self_assessment_due is not None and loaded.self_assessment_due.tzinfo is UTC
        assert loaded.supplement_due is None
        # Aware values in query parameters compare correctly, whatever their zone.
        before = datetime(2025, 3, 1, 8, 30, 16, tzinfo=ICT)
        assert session.exec(select(Period).where(Period.opened_at < before)).one().id == loaded.id
        assert session.exec(select(Period).where(Period.opened_at > local)).first() is None


def test_default_timestamps_are_aware_utc(db: Database) -> None:
    start = datetime.now(UTC)
    with db.session() as session:
        seed(session)
    with db.session() as session:
        created = session.exec(select(Unit.created_at)).one()
    assert created.tzinfo is UTC
    assert start - timedelta(seconds=1) <= created <= datetime.now(UTC)


def test_naive_datetimes_are_refused(db: Database) -> None:
    with pytest.raises(StatementError) as raised, db.session() as session:
        session.add(
            Period(
                name="x", year=2025, framework_id="f", framework_version="1", opened_at=datetime(2025, 1, 1)
            )
        )
    assert isinstance(raised.value.orig, ValueError)


@pytest.mark.postgres
def test_postgres_session_time_zone_does_not_leak(migrated_postgres_url: str) -> None:
    engine = make_engine(migrated_postgres_url, connect_args={"options": "-c timezone=Asia/Ho_Chi_Minh"})
    database = Database(engine=engine)
    try:
        with database.session() as session:
            session.add(Period(name="x", year=2025, framework_id="f", framework_version="1", opened_at=LATER))
        with database.session() as session:
            assert session.exec(select(sa.text("current_setting('TimeZone')"))).one() == "Asia/Ho_Chi_Minh"
            opened_at = session.exec(select(Period.opened_at)).one()
        assert opened_at == LATER and opened_at.tzinfo is UTC
    finally:
        with database.engine.begin() as connection:
            connection.exec_driver_sql("DELETE FROM period")
        database.dispose()


def test_sqlite_stores_utc_text(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    migrate.upgrade(url)
    database = Database(url)
    try:
        with database.session() as session:
            session.add(
                Period(
                    name="x",
                    year=2025,
                    framework_id="f",
                    framework_version="1",
                    opened_at=datetime(2025, 1, 1, 7, 0, tzinfo=ICT),
                )
            )
        with database.engine.connect() as connection:
            stored = connection.exec_driver_sql("SELECT opened_at FROM period").scalar()
        assert stored == "2025-01-01 00:00:00.000000"
    finally:
        database.dispose()


# -- constraints -----------------------------------------------------------------------------------------


def _duplicate_member(session: Session) -> None:
    _, _, member, _ = seed(session)
    session.add(Member(channel=member.channel, chat_id=member.chat_id, unit_id=member.unit_id, role="leader"))


def _duplicate_assessment(session: Session) -> None:
    *_, assessment = seed(session)
    session.add(Assessment(period_id=assessment.period_id, unit_id=assessment.unit_id))


def _duplicate_revision(session: Session) -> None:
    *_, assessment = seed(session)
    assert assessment.id is not None
    for _ in range(2):
        session.add(
            AnswerRevision(assessment_id=assessment.id, indicator_code="1.1", revision=1, channel="console")
        )
        session.flush()


def _duplicate_dedupe_key(session: Session) -> None:
    for _ in range(2):
        session.add(
            Outbox(channel="telegram", chat_id="1", payload_json="{}", dedupe_key="reminder:1:2025-06-01")
        )
        session.flush()


def _duplicate_unit_code(session: Session) -> None:
    unit, *_ = seed(session)
    session.add(Unit(code=unit.code, name="other", level="commune"))


@pytest.mark.parametrize(
    "make_duplicate",
    [
        _duplicate_member,
        _duplicate_assessment,
        _duplicate_revision,
        _duplicate_dedupe_key,
        _duplicate_unit_code,
    ],
)
def test_unique_constraints(db: Database, make_duplicate: Callable[[Session], None]) -> None:
    with pytest.raises(IntegrityError), db.session() as session:
        make_duplicate(session)
    assert count(db, Unit) == 0
    assert count(db, Outbox) == 0


def test_unique_dedupe_key_allows_many_nulls(db: Database) -> None:
    with db.session() as session:
        for _ in range(3):
            session.add(Outbox(channel="telegram", chat_id="1", payload_json="{}"))
    assert count(db, Outbox) == 3


def test_answer_revisions_append(db: Database) -> None:
    with db.session() as session:
        *_, member, assessment = seed(session)
        assert assessment.id is not None
        first = AnswerRevision(
            assessment_id=assessment.id,
            indicator_code="1.1",
            revision=1,
            value_json="42",
            author_member_id=member.id,
            channel="telegram",
        )
        session.add(first)
        session.flush()
        second = AnswerRevision(
            assessment_id=assessment.id,
            indicator_code="1.1",
            revision=2,
            not_applicable=True,
            reason="không áp dụng",
            channel="telegram",
            previous_id=first.id,
        )
        session.add(second)
    with db.session() as session:
        rows = session.exec(select(AnswerRevision).order_by(col(AnswerRevision.revision))).all()
        assert [(r.revision, r.value_json, r.not_applicable) for r in rows] == [
            (1, "42", False),
            (2, None, True),
        ]
        assert rows[1].previous_id == rows[0].id


# -- transactions ----------------------------------------------------------------------------------------


class Boom(Exception):
    pass


def test_session_rolls_back_everything_on_error(db: Database) -> None:
    with pytest.raises(Boom), db.session() as session:
        seed(session)  # flushed: the rows are in the transaction already
        session.add(Outbox(channel="telegram", chat_id="1", payload_json="{}"))
        session.flush()
        raise Boom
    for model in (Unit, Period, Member, Assessment, Outbox):
        assert count(db, model) == 0


def test_session_commits_and_objects_stay_usable(db: Database) -> None:
    with db.session() as session:
        unit, _, member, assessment = seed(session)
    assert unit.id is not None and member.unit_id == unit.id  # readable after the session closed
    assert assessment.status == "draft"
    assert count(db, Member) == 1


def test_every_table_stores_a_row(db: Database) -> None:
    with db.session() as session:
        unit, period, member, assessment = seed(session)
        assert unit.id is not None and assessment.id is not None
        session.add(
            Invite(code="ABCD-1234", unit_id=unit.id, role="leader", period_id=period.id, expires_at=LATER)
        )
        session.add(
            Evidence(
                assessment_id=assessment.id,
                indicator_code="1.2",
                kind="citation",
                citation_number="12/KH-UBND",
                citation_date=date(2025, 2, 3),
                citation_summary="Kế hoạch chuyển đổi số",
                uploader_member_id=member.id,
                channel="telegram",
            )
        )
        session.add(Conversation(channel="telegram", chat_id="100", member_id=member.id, state_json="{}"))
        session.add(ProcessedInbound(channel="telegram", inbound_id="update-1"))
        session.add(JoinAttempt(channel="telegram", chat_id="100", ok=True))
        session.add(
            AuditLog(
                action="submit",
                entity="assessment",
                entity_id=str(assessment.id),
                unit_id=unit.id,
                assessment_id=assessment.id,
                actor_member_id=member.id,
                new_json='{"status": "submitted"}',
            )
        )
        session.add(
            Outbox(channel="telegram", chat_id="100", member_id=member.id, payload_json="{}", priority=10)
        )
    with db.session() as session:
        invite = session.exec(select(Invite)).one()
        assert invite.expires_at == LATER and invite.used_at is None
        evidence = session.exec(select(Evidence)).one()
        assert evidence.citation_date == date(2025, 2, 3) and evidence.late is False
        conversation = session.get(Conversation, ("telegram", "100"))
        assert conversation is not None and conversation.version == 0
        assert session.get(ProcessedInbound, ("telegram", "update-1")) is not None
        assert session.exec(select(JoinAttempt)).one().at.tzinfo is UTC
        assert session.exec(select(AuditLog)).one().old_json is None
        outbox = session.exec(select(Outbox)).one()
        assert (outbox.status, outbox.attempts, outbox.priority) == ("pending", 0, 10)
        assert session.exec(select(Member)).one().paused_reminders is False
        assert session.exec(select(Member)).one().language == "vi"
