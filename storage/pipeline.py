"""Several statements in one go: on PostgreSQL one psycopg pipeline, elsewhere SQLAlchemy.

The recording path (storage/record.py) ends each batch with one statement per table, each for many rows.
Through SQLAlchemy every row of every statement pays the parameter processing of an execution context,
a RETURNING statement is rewritten into one long multi-row statement that psycopg then converts
client-side on every call (it caches only short ones), and each statement waits for its own round
trip. On PostgreSQL this module sends the same rows through psycopg's pipeline instead: each statement
compiled once per process by SQLAlchemy from the same Core construct (so the SQL cannot drift from the
models), all statements in flight together and one sync at the end. A statement goes once for all its
rows: each column's values are one array parameter, sent in binary and read back as a table by
`unnest` (`INSERT ... SELECT ... FROM unnest(...)`, `UPDATE ... FROM unnest(...)`): row by row, psycopg
would dump the parameters and flush the pipeline for every row (the difference is in bench/RESULTS.md).
This is also the one module that reaches into SQLAlchemy's private attributes (compiled statements'
processors, a statement's RETURNING and values), to compile each statement once.

Reads go the same way (`read_all`): the queries of one step of a batch's reading do not depend on each
other, so they share one round trip instead of one each, and their rows come back through the result
processors of the selected columns' types (an aware UTC datetime, say), as SQLAlchemy returns them.

Column defaults that SQLAlchemy would fill in (an outbox row's `status`, say) are filled in the same
way; a callable default must be given in the rows instead. Errors come out as SQLAlchemy's exceptions
(`IntegrityError`, `OperationalError`, ...), so callers handle both paths alike.
"""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter

Dml = sa.Insert | sa.Update


@dataclass(frozen=True)
class Rows:
    """One statement and the rows to execute it for; all rows have the same keys. An UPDATE names the
    values of its WHERE clause with bind parameters (`w_id`, say): the rows' other keys are the columns
    it sets. Only an INSERT may return, and only its table's autoincrement key: the keys come back in
    the rows' order."""

    statement: Dml
    rows: Sequence[Mapping[str, object]]


@dataclass(frozen=True)
class Written:
    """What one `Rows` did: rows matched (summed over its rows) and the values RETURNING gave."""

    rowcount: int
    returned: list[Any]


@dataclass(frozen=True)
class Query:
    """A SELECT and its parameters (lists for `storage.in_list`)."""

    statement: sa.Select[Any]
    params: Mapping[str, object]


def read_all(conn: sa.Connection, queries: Sequence[Query]) -> list[list[Any]]:
    """Each query's rows, in order, inside the connection's transaction. A row reads by position and
    by the name of its column, as a SQLAlchemy row does."""
    if conn.dialect.name == "postgresql":
        return _read_pipelined(conn, queries)
    return [list(conn.execute(q.statement, dict(q.params))) for q in queries]


Processor = Callable[[Any], Any] | None


@functools.lru_cache(maxsize=64)
def _compiled_select(
    statement: sa.Select[Any], dialect: Dialect
) -> tuple[sa.Compiled, Callable[..., tuple[Any, ...]], tuple[Processor, ...], dict[str, Processor]]:
    """The compiled SELECT, its row type, each column's result processor, each parameter's processor."""
    compiled = statement.compile(dialect=dialect)
    columns = list(statement.selected_columns)
    row: Callable[..., tuple[Any, ...]] = namedtuple(  # type: ignore[misc]
        "Row", [str(c.key) for c in columns], rename=True
    )
    results: tuple[Processor, ...] = tuple(c.type._cached_result_processor(dialect, None) for c in columns)
    binds: dict[str, Processor] = {
        name: bind.type._cached_bind_processor(dialect) for name, bind in compiled.binds.items()
    }
    return compiled, row, results, binds


def _read_pipelined(conn: sa.Connection, queries: Sequence[Query]) -> list[list[Any]]:
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    cursors: list[psycopg.Cursor[Any]] = []
    compiled = [_compiled_select(q.statement, conn.dialect) for q in queries]
    sql = ""
    try:
        with driver.pipeline():
            for q, (statement, _, _, binds) in zip(queries, compiled, strict=True):
                sql = str(statement)
                # the values given plus those the statement holds (`status = 'open'`, say)
                values = statement.construct_params(dict(q.params)) or {}
                params = {k: p(v) if (p := binds.get(k)) else v for k, v in values.items()}
                cursor = driver.cursor()
                cursors.append(cursor)
                cursor.execute(sql, params)
        out: list[list[Any]] = []
        for cursor, (_, row, results, _) in zip(cursors, compiled, strict=True):
            raw = cursor.fetchall()
            if any(results):
                out.append([row(*(p(v) if p else v for p, v in zip(results, r, strict=True))) for r in raw])
            else:
                out.append([row(*r) for r in raw])
        return out
    except psycopg.Error as exc:
        raise DBAPIError.instance(sql, None, exc, psycopg.Error, dialect=conn.dialect) from exc
    finally:
        for cursor in cursors:
            cursor.close()


def write_all(conn: sa.Connection, work: Sequence[Rows]) -> list[Written]:
    """Execute every statement of `work` for its rows, in order, inside the connection's transaction."""
    todo = [w for w in work if w.rows]
    for w in todo:  # the same refusals on every backend
        _check_returning(w.statement)
        _defaults(w.statement, tuple(w.rows[0]), conn.dialect)
    if conn.dialect.name == "postgresql":
        written = iter(_pipelined(conn, todo))
    else:
        written = iter([_core(conn, w) for w in todo])
    return [next(written) if w.rows else Written(0, []) for w in work]


def _returns(statement: Dml) -> bool:
    return bool(statement._returning)


def _check_returning(statement: Dml) -> None:
    """Only an INSERT returning its table's autoincrement key: one sequence numbers the rows in the
    order they go in, which is how the PostgreSQL path gives the keys back in the rows' order."""
    if not statement._returning:
        return
    table = statement.table
    assert isinstance(table, sa.Table)
    key = table.autoincrement_column
    if not isinstance(statement, sa.Insert) or key is None or statement._returning != (key,):
        raise ValueError(f"{table.name}: only an INSERT can return, and only the autoincrement key")


def _core(conn: sa.Connection, work: Rows) -> Written:
    result = conn.execute(work.statement, list(work.rows))
    if _returns(work.statement):
        return Written(len(work.rows), list(result.scalars()))
    return Written(result.rowcount, [])


@functools.lru_cache(maxsize=64)
def _defaults(statement: Dml, keys: tuple[str, ...], dialect: Dialect) -> dict[str, object]:
    """What the statement binds for rows with `keys` besides them: the values it holds itself
    (`.values(status="failed")`) and the scalar column defaults SQLAlchemy fills in. A callable
    default must be given in the rows."""
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    table = statement.table
    assert isinstance(table, sa.Table)
    inserted = {c.key: c.default for c in compiled.insert_prefetch}
    updated = {c.key: c.onupdate for c in compiled.update_prefetch}
    defaults: dict[str, object] = {}
    for name, value in compiled.construct_params(dict.fromkeys(keys)).items():
        if name in keys:
            continue
        if name in inserted or name in updated:  # a column default, not a value the statement holds
            default = inserted.get(name)
            if not isinstance(default, sa.ColumnDefault) or not default.is_scalar:
                raise ValueError(f"{table.name}.{name}: no value and no scalar default")
            value = default.arg
        defaults[name] = value
    return defaults


@functools.lru_cache(maxsize=64)
def _unnested(statement: Dml, keys: tuple[str, ...], dialect: Dialect) -> str:
    """The statement for many rows at once: each key's values bound as one array (in binary: psycopg
    quotes text arrays in Python, but packs binary ones fast), read back as a table by `unnest`. An
    INSERT takes the rows in order; an UPDATE joins them (`UPDATE ... FROM unnest(...)`), each bind
    parameter of the statement named by a key becoming that key's column, the other keys the columns
    it sets."""
    table = statement.table
    assert isinstance(table, sa.Table)
    binds: dict[str, sa.types.TypeEngine[Any]] = {}

    def found(bind: BindParameter[Any]) -> None:
        binds.setdefault(bind.key, bind.type)

    visitors.traverse(statement, {}, {"bindparam": found})
    for column, value in (statement._values or {}).items():  # `.values(c=bindparam(...))`: c's type
        if isinstance(value, BindParameter) and isinstance(binds.get(value.key), sa.types.NullType):
            binds[value.key] = table.c[column if isinstance(column, str) else column.key].type
    types = [binds[k] if k in binds else table.c[k].type for k in keys]
    rows = (
        sa.func.unnest(*(sa.bindparam(k, type_=ARRAY(t)) for k, t in zip(keys, types, strict=True)))
        .table_valued(*keys, with_ordinality="n")
        .render_derived(name="v")
    )
    unnested: Dml
    if isinstance(statement, sa.Insert):
        select = sa.select(*(rows.c[k] for k in keys)).order_by(rows.c.n)
        unnested = sa.insert(table).from_select(list(keys), select, include_defaults=False)
        if statement._returning:
            unnested = unnested.returning(*statement._returning)
    else:

        def swap(element: Any, **_: Any) -> visitors.ExternallyTraversible | None:
            if isinstance(element, BindParameter) and element.key in keys:
                return rows.c[element.key]
            return None

        joined = visitors.replacement_traverse(statement, {}, swap)
        assert isinstance(joined, sa.Update)
        unnested = joined
        columns = {k: rows.c[k] for k in keys if k not in binds}
        if columns:
            unnested = unnested.values(columns)
    sql = str(unnested.compile(dialect=dialect))
    for k in keys:
        sql = sql.replace(f"%({k})s", f"%({k})b")
    return sql


def _pipelined(conn: sa.Connection, work: Sequence[Rows]) -> list[Written]:
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    cursors: list[tuple[psycopg.Cursor[Any], bool]] = []
    sql = ""
    try:
        with driver.pipeline():
            for item in work:
                keys = tuple(item.rows[0])
                shared = _defaults(item.statement, keys, conn.dialect)
                columns = {k: [row[k] for row in item.rows] for k in keys}
                if isinstance(item.statement, sa.Insert):  # built anew from its columns: all arrays
                    columns.update({k: [v] * len(item.rows) for k, v in shared.items()})
                    shared = {}
                sql = _unnested(item.statement, tuple(columns), conn.dialect)
                cursor = driver.cursor()
                cursor.execute(sql, {**columns, **shared})
                cursors.append((cursor, _returns(item.statement)))
        written: list[Written] = []
        for cursor, returning in cursors:
            if returning:  # the keys come from one sequence, in the order the rows went in
                returned = sorted(row[0] for row in cursor.fetchall())
                written.append(Written(len(returned), returned))
            else:
                written.append(Written(cursor.rowcount, []))
        return written
    except psycopg.Error as exc:
        raise DBAPIError.instance(sql, None, exc, psycopg.Error, dialect=conn.dialect) from exc
    finally:
        for cursor, _ in cursors:
            cursor.close()
