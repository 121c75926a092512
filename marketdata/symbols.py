"""What a ticker symbol may look like (one rule for commands and settings)."""

from __future__ import annotations

import re

SYMBOL_RE = re.compile(r"^[A-Z]{1,6}(\.[A-Z]{1,2})?$")


def symbol_clean(raw: str) -> str:
    """Upper-cased, stripped symbol; ``ValueError`` naming it when it is not one."""
    symbol = raw.strip().upper()
    if not SYMBOL_RE.match(symbol):
        raise ValueError(f"not a symbol: {raw!r}")
    return symbol
