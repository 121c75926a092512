"""One page shape for every list endpoint: ``{"next", "previous", "results"}``.

Cursor pagination (DRF's): stable under inserts, no COUNT(*), and a client that follows
``next`` until it is null sees every row once. Cursors are opaque, but they arrive from the
client, so they are parsed strictly: DRF's own decoder accepts any text as a position and the
database then fails on ``id < 'abc'`` (a 500), and it answers a bad cursor with 404.
"""

from __future__ import annotations

import binascii
import re
from base64 import b64decode
from typing import Any
from urllib.parse import parse_qsl

from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

from tradeops.errors import ValidationFailed

_DIGITS = re.compile(r"[0-9]{1,18}", re.ASCII)
_CURSOR_KEYS = frozenset({"o", "r", "p"})  # offset, reverse, position (DRF's encoding)


class CursorPage(CursorPagination):
    """Newest first by ``id`` unless a view sets another integer ``ordering``; ``limit``
    1-500 rows (default 100). Positions must be integers: every list here orders by an
    integer key."""

    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 500
    ordering = "-id"
    cursor_query_description = "Opaque: the `next` or `previous` link of the previous page."
    page_size_query_description = "Rows per page (1-500, default 100)."

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= self.max_page_size:
            raise _invalid("limit", f"Must be a whole number from 1 to {self.max_page_size}.")
        return int(raw)

    def decode_cursor(self, request: Request) -> Cursor | None:
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None
        tokens = _cursor_tokens(encoded)
        return Cursor(
            offset=min(tokens.get("o", 0), self.offset_cutoff),
            reverse=bool(tokens.get("r", 0)),
            position=str(tokens["p"]) if "p" in tokens else None,
        )

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        cursor, limit = super().get_schema_operation_parameters(view)
        limit["schema"].update(minimum=1, maximum=self.max_page_size)
        return [cursor, limit]


def _cursor_tokens(encoded: str) -> dict[str, int]:
    """The integers inside a cursor; anything that DRF itself would not have written is a 400."""
    try:
        text = b64decode(encoded.encode("ascii"), validate=True).decode("ascii")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    except (UnicodeError, binascii.Error, ValueError):
        raise _invalid("cursor", "Not a cursor of this API.") from None
    keys = [key for key, _ in pairs]
    if (
        not pairs
        or len(set(keys)) != len(keys)
        or not set(keys) <= _CURSOR_KEYS
        or not all(_DIGITS.fullmatch(value) for _, value in pairs)
    ):
        raise _invalid("cursor", "Not a cursor of this API.")
    tokens = {key: int(value) for key, value in pairs}
    if tokens.get("r", 0) not in (0, 1):
        raise _invalid("cursor", "Not a cursor of this API.")
    return tokens


def _invalid(param: str, reason: str) -> ValidationFailed:
    hint = " Use the next or previous link of a listing as is." if param == "cursor" else ""
    return ValidationFailed(
        f"{param}: {reason}{hint}", details={"fields": {param: [f"{reason}{hint}"]}}
    )
