"""Strict API input fields shared by every app's serializers.

DRF's defaults are lenient in ways that matter for money: a ``BooleanField`` reads a missing
query parameter as ``False``, ``int()`` and ``Decimal()`` accept Arabic-Indic and full-width
digits, underscores and exponents, and ``str.upper()`` turns a dotless-i ``"\u0131bm"`` into
``"IBM"``. The fields here accept one documented ASCII spelling and refuse everything else
with a 400.
"""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

# A US equity symbol as sent: 1-6 ASCII letters, optionally "." and a 1-2 letter share class
# (BRK.B). Explicit ASCII ranges, never IGNORECASE: under Unicode case folding the Kelvin sign
# matches "k" and a long s matches "s".
SYMBOL_PATTERN = r"^[A-Za-z]{1,6}(\.[A-Za-z]{1,2})?$"
_SYMBOL = re.compile(SYMBOL_PATTERN, re.ASCII)


def shown(value: Any, limit: int = 24) -> str:
    """``value`` for an error message, cut short: a 3 MB field must not come back 3 MB long."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


@extend_schema_field(OpenApiTypes.BOOL)
class QueryBooleanField(serializers.Field):
    """A boolean query filter: ``true``/``false`` (or ``1``/``0``); absent means "no filter".

    DRF's ``BooleanField`` reads a parameter missing from a query string as ``False``
    (``default_empty_html``): ``GET /quarantines`` listed only the cleared ones."""

    default_error_messages = {"invalid": "Must be true or false (or 1 or 0), got {value!r}."}
    default_empty_html = empty
    TRUE, FALSE = frozenset({"true", "1"}), frozenset({"false", "0"})

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> bool:
        text = data.lower() if isinstance(data, str) and data.isascii() else None
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        self.fail("invalid", value=data)

    def to_representation(self, value: bool) -> bool:
        return bool(value)


@extend_schema_field(
    {"type": "string", "pattern": SYMBOL_PATTERN, "maxLength": 9, "example": "AAPL"}
)
class SymbolField(serializers.Field):
    """A symbol, validated as sent and only then upper-cased: ``str.upper()`` first turned
    ``"\u0131bm"`` into IBM, ``"\u00df"`` into SS and the ``"\ufb00"`` ligature into FF."""

    default_error_messages = {
        "invalid": (
            "{value} is not a US equity symbol: 1-6 ASCII letters, optionally '.' and a 1-2 "
            "letter class (AAPL, BRK.B)."
        )
    }

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str) or not _SYMBOL.fullmatch(data):
            self.fail("invalid", value=shown(data))
        return data.upper()

    def to_representation(self, value: str) -> str:
        return value
