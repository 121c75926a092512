"""``AnyOf``: membership in a long list of values as one array parameter on PostgreSQL.

``field__in=[10,000 ids]`` makes Django prepare every value and write one placeholder each,
psycopg split a 60 kB statement, and the server parse it: ~0.7 s for 10,000 order ids.
``AnyOf(F("field"), ids)`` sends ``field = ANY(%s)`` with the list as one array (~0.1 s,
same rows). Other databases (SQLite, the demo) get the plain ``IN``.

    Order.objects.filter(AnyOf(F("client_order_id"), ids))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Lookup
from django.db.models.lookups import In


class AnyOf(Lookup):
    """``lhs = ANY(rhs)`` for a sequence of plain values (not expressions, not a queryset)."""

    lookup_name = "any_of"
    prepare_rhs = False  # the values go as they are, in one array parameter

    def __init__(self, lhs: Any, rhs: Sequence[Any]) -> None:
        super().__init__(lhs, list(rhs))

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, Sequence[Any]]:
        fallback = In(self.lhs, self.rhs)
        return fallback.as_sql(compiler, connection)

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, Sequence[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", (*lhs_params, self.rhs)
