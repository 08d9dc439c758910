"""storage/pipeline.py and storage/in_list.py, on SQLite and PostgreSQL: group commit reads and writes
through them, so their rows must be exactly what SQLAlchemy gives (values, types, names) and their
writes exactly what executing the statement row by row does, whichever path a backend takes."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from storage.admin import UnitRow
from storage.db import Database
from storage.in_list import in_list
from storage.load import OPEN_PERIODS as _OPEN_PERIODS
from storage.models import Extension, Outbox, ProcessedInbound, Unit
from storage.pipeline import Query, Rows, read_all, write_all
from tests.e2e_support import NOW, open_province

pytest_plugins = ["tests.storage_fixtures"]

_UNIT = Unit.__table__
_EXT = Extension.__table__
_UNITS = sa.select(_UNIT.c.id, _UNIT.c.code, _UNIT.c.level).where(in_list(_UNIT.c.code, "codes"))
_EXTENSIONS = (
    sa.select(_EXT.c.unit_id, _EXT.c.deadline, _EXT.c.due_at)
    .where(_EXT.c.period_id == sa.bindparam("period_id"), in_list(_EXT.c.unit_id, "units"))
    .order_by(_EXT.c.unit_id)
)


def _province(db: Database) -> tuple[int, dict[str, int]]:
    """Three communes in an open period, the first two with a later deadline; the period id and the
    unit ids by code."""
    rows = [UnitRow("P", "Tỉnh", "province", None)] + [
        UnitRow(f"X{n}", f"Xã {n}", "commune", "P") for n in range(3)
    ]
    open_province(db, rows, NOW + dt.timedelta(days=3))
    with db.session() as s:
        conn = s.connection()
        period_id = conn.execute(sa.text("SELECT id FROM period")).scalar_one()
        units = {code: uid for uid, code in conn.execute(sa.select(_UNIT.c.id, _UNIT.c.code))}
        # the due time written in Vietnam's time zone comes back as the same instant, in UTC
        hanoi = dt.timezone(dt.timedelta(hours=7))
        for n in range(2):
            due = dt.datetime(2026, 12, 1 + n, 17, 0, tzinfo=hanoi)
            s.add(
                Extension(
                    period_id=period_id,
                    unit_id=units[f"X{n}"],
                    deadline="self_assessment_due",
                    due_at=due,
                    reason="bão lũ",
                )
            )
    return period_id, units


def test_read_all_gives_each_query_its_rows_as_sqlalchemy_would(db: Database) -> None:
    period_id, units = _province(db)
    queries = [
        Query(_UNITS, {"codes": ["X0", "X2", "nobody"]}),
        Query(_OPEN_PERIODS, {}),  # `status = 'open'` is held by the statement itself
        Query(_EXTENSIONS, {"period_id": period_id, "units": [units["X0"], units["X1"], units["X2"]]}),
        Query(_UNITS, {"codes": ["X1"]}),
        Query(_UNITS, {"codes": []}),
    ]
    with db.session() as s:
        if s.connection().dialect.name == "postgresql":  # psycopg would hand back +07:00 times
            s.connection().exec_driver_sql("SET TIME ZONE 'Asia/Ho_Chi_Minh'")
        got = read_all(s.connection(), queries)
        expected = [list(s.connection().execute(q.statement, dict(q.params))) for q in queries[:4]]

    assert sorted(row.code for row in got[0]) == ["X0", "X2"]
    assert sorted(tuple(r) for r in got[0]) == sorted(tuple(r) for r in expected[0])
    assert [r.level for r in got[0]] == ["commune", "commune"]
    assert [tuple(r) for r in got[1]] == [tuple(r) for r in expected[1]] and len(got[1]) == 1
    assert got[1][0][0] == period_id
    assert [tuple(r) for r in got[2]] == [tuple(r) for r in expected[2]]
    assert [r.unit_id for r in got[2]] == [units["X0"], units["X1"]]
    first_due = got[2][0].due_at
    assert first_due == dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)
    assert first_due.tzinfo is dt.UTC  # aware, in UTC, as UTCDateTime promises
    assert [r.code for r in got[3]] == ["X1"]
    assert got[4] == []


def test_a_query_the_database_refuses_raises_sqlalchemys_error(db: Database) -> None:
    missing = sa.select(sa.column("x")).select_from(sa.table("no_such_table"))
    with db.session() as s, pytest.raises(DBAPIError, match="no_such_table"):
        read_all(s.connection(), [Query(_UNITS, {"codes": ["X0"]}), Query(missing, {})])


def test_in_list_is_a_plain_predicate_on_sqlite_and_one_array_on_postgresql() -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    on_sqlite = str(_EXTENSIONS.compile(dialect=sqlite.dialect()))
    on_postgres = str(_EXTENSIONS.compile(dialect=postgresql.dialect()))
    assert "extension.unit_id IN (__[POSTCOMPILE_units])" in on_sqlite and "= 1" not in on_sqlite
    assert "extension.unit_id = ANY (%(units)s::INTEGER[])" in on_postgres


_OUTBOX = Outbox.__table__
_PROCESSED = ProcessedInbound.__table__
_QUEUE = _OUTBOX.insert().returning(_OUTBOX.c.id)
# each row's attempt counted, unless someone counted it meanwhile (the WHERE clause's own values)
_RETRIED = _OUTBOX.update().where(
    _OUTBOX.c.id == sa.bindparam("w_id"), _OUTBOX.c.attempts == sa.bindparam("w_attempts")
)
_FAILED = (
    _OUTBOX.update()
    .where(_OUTBOX.c.id == sa.bindparam("w_id"))
    .values(status="failed", last_error=sa.bindparam("why"))
)


def _queued(n: int) -> list[dict[str, object]]:
    return [
        dict(channel="telegram", chat_id=str(700 + n % 3), payload_json=f'{{"n": {n}}}', created_at=NOW)
        for n in range(n)
    ]


def _outbox(db: Database) -> dict[int, tuple[object, ...]]:
    columns = (_OUTBOX.c.payload_json, _OUTBOX.c.status, _OUTBOX.c.priority, _OUTBOX.c.member_id)
    columns += (_OUTBOX.c.attempts, _OUTBOX.c.last_error, _OUTBOX.c.created_at)
    with db.session() as s:
        return {row[0]: tuple(row[1:]) for row in s.connection().execute(sa.select(_OUTBOX.c.id, *columns))}


def test_write_all_inserts_returns_keys_in_row_order_and_updates_what_matches(db: Database) -> None:
    with db.session() as s:
        conn = s.connection()
        first, processed, second = write_all(
            conn,
            [
                Rows(_QUEUE, _queued(40)),
                Rows(_PROCESSED.insert(), [dict(channel="telegram", inbound_id="u1", processed_at=NOW)]),
                Rows(_QUEUE, [{**row, "member_id": None} for row in _queued(3)]),
            ],
        )
        conn.execute(_OUTBOX.insert(), {**_queued(1)[0], "payload_json": "someone else's"})
    assert first.rowcount == 40 and processed.rowcount == 1 and second.rowcount == 3
    rows = _outbox(db)
    assert len(rows) == 44
    assert [rows[i][0] for i in first.returned] == [f'{{"n": {n}}}' for n in range(40)]
    assert [rows[i][0] for i in second.returned] == [f'{{"n": {n}}}' for n in range(3)]
    # the scalar defaults SQLAlchemy fills in, and None as None
    assert {rows[i][1:5] for i in first.returned} == {("pending", 0, None, 0)}
    assert {rows[i][6] for i in first.returned} == {NOW}

    ids = first.returned
    with db.session() as s:
        retried, failed, nothing = write_all(
            s.connection(),
            [
                Rows(
                    _RETRIED,
                    [dict(w_id=i, w_attempts=0 if n else 5, attempts=n + 1) for n, i in enumerate(ids[:4])],
                ),
                Rows(_FAILED, [dict(w_id=ids[5], why="chặn bot"), dict(w_id=ids[6], why="429")]),
                Rows(_RETRIED, []),
            ],
        )
    assert (retried.rowcount, failed.rowcount, nothing.rowcount) == (3, 2, 0)
    rows = _outbox(db)
    assert [rows[i][4] for i in ids[:5]] == [0, 2, 3, 4, 0]  # the first was counted meanwhile
    assert [rows[i][1:6:4] for i in ids[4:7]] == [
        ("pending", None),
        ("failed", "chặn bot"),
        ("failed", "429"),
    ]


def test_write_all_refuses_what_it_cannot_give_back_in_order(db: Database) -> None:
    returning_text = _OUTBOX.insert().returning(_OUTBOX.c.payload_json)
    with db.session() as s, pytest.raises(ValueError, match="autoincrement key"):
        write_all(s.connection(), [Rows(returning_text, _queued(2))])
    with db.session() as s, pytest.raises(ValueError, match="created_at: no value"):
        write_all(
            s.connection(), [Rows(_QUEUE, [{"channel": "telegram", "chat_id": "1", "payload_json": "{}"}])]
        )


def test_a_row_the_database_refuses_rolls_back_with_sqlalchemys_error(db: Database) -> None:
    seen = dict(channel="telegram", inbound_id="u1", processed_at=NOW)
    with pytest.raises(IntegrityError), db.session() as s:
        write_all(s.connection(), [Rows(_QUEUE, _queued(2)), Rows(_PROCESSED.insert(), [seen, seen])])
    assert _outbox(db) == {}
