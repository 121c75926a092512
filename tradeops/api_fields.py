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

from tradeops.reasons import REASON_MAX_LENGTH, REASON_MIN_LENGTH, REASON_RULE, reason_problem
from tradeops.symbols import SYMBOL_MAX_LENGTH, SYMBOL_PATTERN, SYMBOL_RULE, symbol_or_none

# Whole numbers sent as strings, and decimal strings: ASCII digits without leading zeros, one
# optional "." (no sign, exponent, "_", spaces or other scripts' digits). One spelling per value.
DIGITS_PATTERN = r"^[1-9][0-9]{0,17}$"
_DIGITS = re.compile(DIGITS_PATTERN, re.ASCII)
DECIMAL_STRING_PATTERN = r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,4})?$"


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


class QueryFilterSerializer(serializers.Serializer):
    """The query string of every API request, one rule (applied by ``tradeops.api_views
    .ApiView`` before the handler runs; a subclass declares the parameters a view reads):

    - an unknown parameter is a 400 naming it: a misspelt ``symbl`` must not list every row,
      a misspelt ``top_m`` must not serve the default. A paginated listing also takes its
      paginator's ``cursor`` and ``limit`` (``context["paging"]``), nothing else does;
    - a blank one (``?symbol=``) is a 400: DRF reads a blank value as absent, so a client
      whose variable came out empty was answered with every row instead of the few it asked;
    - a repeated one (``?status=open&status=filled``) is a 400: which one would count?
    - an absent one means "no filter"."""

    def to_internal_value(self, data: Any) -> Any:
        allowed = set(self.fields) | set(self.context.get("paging", ()))
        errors: dict[str, list[str]] = {}
        for name in sorted(data):
            values = data.getlist(name) if hasattr(data, "getlist") else [data[name]]
            if name not in allowed:
                errors[name] = ["Unknown parameter."]
            elif len(values) > 1:
                errors[name] = ["Given more than once."]
            elif name in self.fields and values[0] == "":
                errors[name] = ["May not be blank: leave the parameter out for no filter."]
        if errors:
            raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


@extend_schema_field(OpenApiTypes.BOOL)
class QueryBooleanField(serializers.Field):
    """A boolean query filter: ``true`` or ``false``; absent means "no filter".

    DRF's ``BooleanField`` reads a parameter missing from a query string as ``False``
    (``default_empty_html``): ``GET /quarantines`` listed only the cleared ones."""

    default_error_messages = {"invalid": "Must be true or false, got {value}."}
    default_empty_html = empty
    VALUES = {"true": True, "false": False}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, str) or data not in self.VALUES:
            self.fail("invalid", value=shown(data))
        return self.VALUES[data]

    def to_representation(self, value: bool) -> bool:
        return bool(value)


class StrictBooleanField(serializers.BooleanField):
    """A body boolean: JSON ``true`` or ``false`` only (DRF also takes "yes", "on", 1, "t")."""

    default_error_messages = {"invalid": "Must be a JSON boolean (true or false), got {value}."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", value=shown(data))
        return data


class StrictCharField(serializers.CharField):
    """A body string: a JSON string only (DRF's CharField turns 123 and 1.5 into text)."""

    default_error_messages = {"not_a_string": "Must be a JSON string, got {value}."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string", value=shown(data))
        return super().to_internal_value(data)


class PatternField(serializers.Field):
    """A string that must match ``pattern`` as sent: no trimming, no numbers turned into
    text, and ``$`` means the end (Python's ``$`` also matches before a final newline)."""

    default_error_messages = {"invalid": "{hint}, got {value}."}

    def __init__(self, pattern: str, *, hint: str, max_length: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pattern, self.hint, self.max_length = pattern, hint, max_length
        self._regex = re.compile(pattern, re.ASCII)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str) or not self._regex.fullmatch(data):
            self.fail("invalid", hint=self.hint, value=shown(data))
        return data

    def to_representation(self, value: str) -> str:
        return value


@extend_schema_field(
    {
        "type": "string",
        "pattern": SYMBOL_PATTERN,
        "maxLength": SYMBOL_MAX_LENGTH,
        "example": "AAPL",
    }
)
class SymbolField(serializers.Field):
    """A symbol, validated as sent and only then upper-cased (``tradeops.symbols``)."""

    default_error_messages = {"invalid": f"{{value}} is not a US equity symbol: {SYMBOL_RULE}."}

    def to_internal_value(self, data: Any) -> str:
        symbol = symbol_or_none(data)
        if symbol is None:
            self.fail("invalid", value=shown(data))
        return symbol

    def to_representation(self, value: str) -> str:
        return value


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
    """A decimal sent as a JSON string matching ``pattern``: ASCII digits without leading
    zeros, one optional ``.`` (``"99.50"``).

    JSON numbers are refused: many clients turn ``99.5`` into a binary float before it is
    sent, so the text that arrives need not be the number the strategy meant. ``Decimal()``
    itself reads ``"1_000"``, ``"1.5e2"``, ``" 10"`` and full-width or Arabic-Indic digits;
    none of them gets that far. The pattern is the grammar, and the OpenAPI schema states it
    as is (tradeops.api_schema)."""

    default_error_messages = {
        "not_a_string": (
            'Must be a decimal string such as "99.50", not a JSON number ({value}): a JSON '
            "number is a binary float in many clients and may not be the price you meant."
        ),
        "not_decimal": 'Must be a decimal string such as "99.50": {rule}; got {value}.',
    }

    def __init__(
        self,
        *,
        pattern: str = DECIMAL_STRING_PATTERN,
        rule: str = "ASCII digits without leading zeros, an optional '.' and at most 4 "
        "decimals (no sign, exponent, '_' or spaces)",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("max_digits", 16)
        kwargs.setdefault("decimal_places", 4)
        super().__init__(**kwargs)
        self.pattern, self.rule = pattern, rule
        self._regex = re.compile(pattern, re.ASCII)
        # The schema's description (drf-spectacular shows help_text): the rule, then the use.
        bounds = "".join(
            f"; {word} {value}"
            for word, value in (("at least", self.min_value), ("at most", self.max_value))
            if value is not None
        )
        described = f"A decimal string, never a JSON number: {rule}{bounds}."
        self.help_text = f"{described} {self.help_text}" if self.help_text else described

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, int | float | Decimal) and not isinstance(data, bool):
            self.fail("not_a_string", value=shown(data))
        if not isinstance(data, str) or not self._regex.fullmatch(data):
            self.fail("not_decimal", rule=self.rule, value=shown(data))
        return super().to_internal_value(data)


class ReasonField(StrictCharField):
    """An operator's reason in a request body: the one rule of ``tradeops.reasons``, one
    message. ``optional``: blank or absent is allowed (a strategy cancelling its own order).
    min/max length are declared for the schema; the rule is checked first, so a short reason
    gets the rule's message, not DRF's length message as well."""

    def __init__(self, *, optional: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", REASON_RULE)
        if optional:  # no minLength in the schema: "" is accepted
            kwargs.setdefault("required", False)
            kwargs.setdefault("allow_blank", True)
        else:
            kwargs.setdefault("min_length", REASON_MIN_LENGTH)
        super().__init__(max_length=REASON_MAX_LENGTH, **kwargs)

    def run_validators(self, value: Any) -> None:
        problem = reason_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        super().run_validators(value)
