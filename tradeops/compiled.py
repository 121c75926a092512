"""Reads on the order path, written as ORM querysets but built and compiled once.

Building a queryset and compiling it to SQL costs about 0.5-1.5 ms of CPU per statement,
several times what PostgreSQL and psycopg spend answering it; an order's pre-trade checks
read the same dozen shapes with different values each time (issue 14, point 8). A
``CompiledQuery`` keeps the queryset as the one definition of the read (portable between
PostgreSQL and SQLite, the ORM's converters applied to what comes back) and compiles it once
per database connection, with ``Param`` placeholders that each call binds.

Only values that change between calls may vary, and every one of them must be a ``Param``
(a clock, a setting): a literal in the builder is frozen into the SQL at the first call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Expression, Field, QuerySet
from django.db.models.expressions import SQLiteNumericMixin
from django.db.models.sql import UpdateQuery
from django.db.transaction import TransactionManagementError


class Param(SQLiteNumericMixin, Expression):
    """A named parameter of a compiled statement: compiles to a placeholder; each execution
    binds its value (prepared for the database by ``output_field``)."""

    def __init__(self, name: str, output_field: Field) -> None:
        super().__init__(output_field=output_field)
        self.name = name

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        return "%s", [self]


def bind(params: tuple[Any, ...], values: dict[str, Any], conn: Any) -> list[Any]:
    """The parameters of a compiled statement with each ``Param`` replaced by its value."""
    return [
        p.output_field.get_db_prep_value(values[p.name], conn) if isinstance(p, Param) else p
        for p in params
    ]


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple[Any, ...]
    converters: list[tuple[int, tuple[list[Any], Any]]]
    locks_rows: bool  # SELECT ... FOR UPDATE: only inside a transaction, every call


class CompiledQuery:
    """``build(**params)`` returns the queryset (``values_list``, or plain model rows with
    ``model=True``), given one ``Param`` per keyword of ``params``. ``rows``/``first`` run it."""

    def __init__(
        self, build: Callable[..., QuerySet], *, model: bool = False, **params: Field
    ) -> None:
        self.build = build
        self.model = model
        self.param_fields = params
        self._by_connection: WeakKeyDictionary[Any, _Compiled] = WeakKeyDictionary()
        self._lock = threading.Lock()

    def _compiled(self, connection: Any) -> _Compiled:
        with self._lock:
            compiled = self._by_connection.get(connection)
        if compiled is None:
            qs = self.build(**{n: Param(n, f) for n, f in self.param_fields.items()})
            compiler = qs.query.get_compiler(connection=connection)
            sql, params = compiler.as_sql()
            select = [s[0] for s in compiler.select[: compiler.col_count]]
            if self.model:
                self._model = qs.model
                self._attnames = [f.attname for f in qs.model._meta.concrete_fields]
                assert len(select) == len(self._attnames), "model rows: no deferred fields"  # noqa: S101
            compiled = _Compiled(
                sql,
                params,
                list(compiler.get_converters(select).items()),
                qs.query.select_for_update,
            )
            with self._lock:
                self._by_connection[connection] = compiled
        return compiled

    def rows(self, **values: Any) -> list[Any]:
        """Every row: tuples, or model instances (``model=True``)."""
        connection = connections[DEFAULT_DB_ALIAS]  # this thread's: compiled per connection
        c = self._compiled(connection)
        if c.locks_rows and connection.get_autocommit():
            # Django refuses this when it compiles the query; compiled once, it would run the
            # later calls' FOR UPDATE in autocommit, a lock released as soon as it is taken.
            raise TransactionManagementError(
                "select_for_update cannot be used outside of a transaction."
            )
        with connection.cursor() as cursor:
            cursor.execute(c.sql, bind(c.params, values, connection))
            rows = cursor.fetchall()
        if c.converters:
            rows = [_converted(row, c, connection) for row in rows]
        if self.model:
            return [self._model.from_db(connection.alias, self._attnames, row) for row in rows]
        return rows

    def first(self, **values: Any) -> Any:
        """The first row or None (the builder orders and limits it)."""
        rows = self.rows(**values)
        return rows[0] if rows else None


def _converted(row: tuple[Any, ...], c: _Compiled, connection: Any) -> tuple[Any, ...]:
    """The ORM's database converters (SQLite's datetimes and decimals, ...) on one row."""
    converted = list(row)
    for pos, (convs, expression) in c.converters:
        value = converted[pos]
        for convert in convs:
            value = convert(value, expression, connection)
        converted[pos] = value
    return tuple(converted)


class CompiledUpdate:
    """``build(**params)`` returns ``(queryset, assignments)``: the rows to update and the
    values to set (as ``QuerySet.update`` takes them), given one ``Param`` per keyword of
    ``params``. ``execute`` runs it and returns the row count."""

    def __init__(self, build: Callable[..., tuple[QuerySet, dict[str, Any]]], **params: Field):
        self.build = build
        self.param_fields = params
        self._by_vendor: dict[str, tuple[str, tuple[Any, ...]]] = {}

    def _compiled(self, connection: Any) -> tuple[str, tuple[Any, ...]]:
        compiled = self._by_vendor.get(connection.vendor)  # no converters: per vendor
        if compiled is None:
            qs, assignments = self.build(**{n: Param(n, f) for n, f in self.param_fields.items()})
            query = qs.query.chain(UpdateQuery)
            query.add_update_values(assignments)
            compiled = self._by_vendor[connection.vendor] = query.get_compiler(
                connection=connection
            ).as_sql()
        return compiled

    def execute(self, **values: Any) -> int:
        connection = connections[DEFAULT_DB_ALIAS]
        sql, params = self._compiled(connection)
        with connection.cursor() as cursor:
            cursor.execute(sql, bind(params, values, connection))
            return cursor.rowcount
