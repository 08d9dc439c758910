"""`column IN (list)` whose PostgreSQL plan does not depend on the list's length or on fresh statistics.

SQLAlchemy renders an expanding `IN` as one placeholder per value, so every list length is a different
statement for psycopg to prepare, and the generic plan PostgreSQL settles on after five executions
was measured filtering `processed_inbound` row by row (`Rows Removed by Filter: 7 090`, 7 ms) instead
of looking the ids up in the primary key, because at planning time the statistics of a table filled
since the last ANALYZE said it was nearly empty. On PostgreSQL the list is therefore one array
parameter, `column = ANY(:name)`: one statement for every length, and an index condition for the
planner. SQLite has no arrays and keeps the expanding `IN`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.operators import OperatorType
from sqlalchemy.sql.visitors import InternalTraversal


class InList(sa.ColumnElement[bool]):
    """`column` is one of the values bound to `name` (a list or tuple)."""

    inherit_cache = True
    type = sa.Boolean()
    _traverse_internals = [  # noqa: RUF012  (SQLAlchemy reads it from the class)
        ("column", InternalTraversal.dp_clauseelement),
        ("name", InternalTraversal.dp_string),
    ]

    def __init__(self, column: sa.ColumnElement[Any], name: str) -> None:
        self.column = column
        self.name = name

    def self_group(self, against: OperatorType | None = None) -> sa.ColumnElement[Any]:
        # already a predicate: no `= 1` in an AND on SQLite, which would hide the index
        if against in (operators.and_, operators.or_, operators._asbool):
            return self
        return sa.sql.elements.Grouping(self)


def in_list(column: sa.ColumnElement[Any], name: str) -> InList:
    """`column IN (:name)` for a list bound at execution, `column = ANY(:name)` on PostgreSQL."""
    return InList(column, name)


@compiles(InList)
def _expanding(element: InList, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column.in_(sa.bindparam(element.name, expanding=True)), **kw)


@compiles(InList, "postgresql")
def _array(element: InList, compiler: SQLCompiler, **kw: Any) -> str:
    array = sa.bindparam(element.name, type_=postgresql.ARRAY(element.column.type))
    return compiler.process(element.column == sa.any_(array), **kw)
