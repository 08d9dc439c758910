"""`column IN (list)` as one statement whatever the list's length.

SQLAlchemy renders an expanding `IN` as one placeholder per value, so a batch of 18 chats and one of
19 are different statements: psycopg prepares each length separately (the loader's list
queries times up to 32 lengths, against psycopg's cache of 100 prepared statements) and PostgreSQL
plans each again. On PostgreSQL the list is therefore one array parameter, `column = ANY(:name)`: one
statement, prepared once. SQLite has no arrays and keeps the expanding `IN`.

(Neither form protects a plan from statistics that are wrong: on tables never analyzed, PostgreSQL
was seen filtering a channel's every processed id for both. Autovacuum analyzes a table in service;
`bench/update_bench.py` runs ANALYZE for the same reason.)
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
