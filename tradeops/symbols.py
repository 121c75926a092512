"""What a US equity symbol may look like: one rule for the API, the quote path, management
commands and settings. Pure.

As sent: 1-6 ASCII letters, optionally "." and a 1-2 letter share class (BRK.B). The RAW value
is matched before it is upper-cased: ``str.upper()`` turns a dotless i ("\u0131bm") into IBM, a
sharp s ("\u00df") into SS and the "\ufb00" ligature into FF, so upper-casing first would let
text that is no symbol trade as one. Explicit ASCII ranges, never IGNORECASE: under Unicode
case folding the Kelvin sign matches "k" and a long s matches "s". No trimming either: a list
in a setting or an option is split and its items stripped by whoever parses the list.
"""

from __future__ import annotations

import re

SYMBOL_PATTERN = r"^[A-Za-z]{1,6}(\.[A-Za-z]{1,2})?$"
SYMBOL_MAX_LENGTH = 9
SYMBOL_RULE = "1-6 ASCII letters, optionally '.' and a 1-2 letter class (AAPL, BRK.B)"
_SYMBOL = re.compile(SYMBOL_PATTERN, re.ASCII)


def symbol_or_none(raw: object) -> str | None:
    """The upper-cased symbol, or None when ``raw`` is not one (for hot paths and filters)."""
    if not isinstance(raw, str) or not _SYMBOL.fullmatch(raw):
        return None
    return raw.upper()


def symbol_parse(raw: object) -> str:
    """The upper-cased symbol; ``ValueError`` naming ``raw`` (cut short) when it is not one."""
    symbol = symbol_or_none(raw)
    if symbol is None:
        shown = repr(raw) if len(repr(raw)) <= 40 else f"{repr(raw)[:40]}..."
        raise ValueError(f"{shown} is not a US equity symbol: {SYMBOL_RULE}")
    return symbol
