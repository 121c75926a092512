"""Strict API input fields shared by every app's serializers.

DRF's defaults are lenient in ways that matter for money: a ``BooleanField`` reads a missing
query parameter as ``False``, ``int()`` and ``Decimal()`` accept Arabic-Indic and full-width
digits, underscores and exponents, and ``str.upper()`` turns a dotless-i ``"\u0131bm"`` into
``"IBM"``. The fields here accept one documented ASCII spelling and refuse everything else
with a 400.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

# A US equity symbol as sent: 1-6 ASCII letters, optionally "." and a 1-2 letter share class
# (BRK.B). Explicit ASCII ranges, never IGNORECASE: under Unicode case folding the Kelvin sign
# matches "k" and a long s matches "s".
SYMBOL_PATTERN = r"^[A-Za-z]{1,6}(\.[A-Za-z]{1,2})?$"
_SYMBOL = re.compile(SYMBOL_PATTERN, re.ASCII)
# Whole numbers sent as strings, and decimal strings: ASCII digits, one optional ".", nothing
# else (no sign, exponent, "_", spaces or other scripts' digits).
_DIGITS = re.compile(r"[0-9]{1,18}", re.ASCII)
DECIMAL_STRING_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,4})?$"
_DECIMAL_STRING = re.compile(DECIMAL_STRING_PATTERN, re.ASCII)


def shown(value: Any, limit: int = 24) -> str:
    """``value`` for an error message, cut short: a 3 MB field must not come back 3 MB long."""
    text = str(value) if isinstance(value, Decimal) else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


class StrictSerializer(serializers.Serializer):
    """Refuses unknown fields: ``limitprice`` must not silently become a market order."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


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


@extend_schema_field(OpenApiTypes.INT)
class BoundedIntegerField(serializers.Field):
    """A JSON integer, or a string of ASCII digits, within bounds read from settings at request
    time. ``10.5``, ``10.0``, ``true``, ``"ten"``, ``"1_000"``, ``" 10"`` and other scripts'
    digits (``int()`` reads Arabic-Indic ``"\u0661\u0660"`` as 10) are refused, never
    converted."""

    default_error_messages = {
        "invalid": "Must be a whole number (an integer), got {value}.",
        "range": "Must be between {low} and {high}.",
    }

    def __init__(self, *, low: int, high_setting: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.low, self.high_setting = low, high_setting

    @property
    def high(self) -> int:
        return getattr(settings, self.high_setting)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, str) and _DIGITS.fullmatch(data):
            data = int(data)
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid", value=shown(data))
        if not self.low <= data <= self.high:
            self.fail("range", low=self.low, high=self.high)
        return data

    def to_representation(self, value: int) -> int:
        return int(value)


class DecimalStringField(serializers.DecimalField):
    """A decimal sent as a JSON string of ASCII digits with an optional single ``.`` and at
    most 4 decimals (``"99.50"``).

    JSON numbers are refused: many clients turn ``99.5`` into a binary float before it is
    sent, so the text that arrives need not be the number the strategy meant. ``Decimal()``
    itself reads ``"1_000"``, ``"1.5e2"``, ``" 10"`` and full-width or Arabic-Indic digits;
    none of them gets that far."""

    default_error_messages = {
        "not_a_string": (
            'Must be a decimal string such as "99.50", not a JSON number ({value}): a JSON '
            "number is a binary float in many clients and may not be the price you meant."
        ),
        "not_decimal": (
            'Must be a decimal string such as "99.50": ASCII digits, an optional "." and at '
            "most 4 decimals (no sign, exponent, '_' or spaces), got {value}."
        ),
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", 16)
        kwargs.setdefault("decimal_places", 4)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, int | float | Decimal) and not isinstance(data, bool):
            self.fail("not_a_string", value=shown(data))
        if not isinstance(data, str) or not _DECIMAL_STRING.fullmatch(data):
            self.fail("not_decimal", value=shown(data))
        return super().to_internal_value(data)
