"""storage/pipeline.py's reads and storage/in_list.py, on SQLite and PostgreSQL: group commit reads
through them, so their rows must be exactly what SQLAlchemy gives (values, types, names), whichever
path a backend takes."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from storage.admin import UnitRow
from storage.conversations import _OPEN_PERIODS
from storage.db import Database
from storage.in_list import in_list
from storage.models import Extension, Unit
from storage.pipeline import Query, read_all
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
