"""The symbol rule (``tradeops.symbols``): validated as sent, only then upper-cased."""

from __future__ import annotations

import pytest

from tradeops.symbols import symbol_or_none, symbol_parse


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("AAPL", "AAPL"),
        ("aapl", "AAPL"),
        ("BRK.B", "BRK.B"),
        ("brk.b", "BRK.B"),
        ("A", "A"),
        ("ABCDEF", "ABCDEF"),
        ("ABCDEFG", None),
        ("", None),
        ("AAPL ", None),
        ("AA PL", None),
        ("BRK.", None),
        ("BRK.BBB", None),
        ("1234", None),
        ("\u0131bm", None),  # dotless i: str.upper() would make it "IBM"
        ("\u00df", None),  # sharp s: upper() is "SS"
        ("\ufb00", None),  # ligature ff: upper() is "FF"
        ("\u212aO", None),  # Kelvin sign: matches "k" under IGNORECASE
        ("AAPL\n", None),
        (None, None),
        (42, None),
    ],
)
def test_symbols_are_validated_raw_before_upper_casing(raw: object, expected: str | None) -> None:
    assert symbol_or_none(raw) == expected
    if expected is None:
        with pytest.raises(ValueError, match="is not a US equity symbol"):
            symbol_parse(raw)
    else:
        assert symbol_parse(raw) == expected


def test_a_huge_value_is_named_cut_short() -> None:
    with pytest.raises(ValueError) as raised:
        symbol_parse("X" * 3_000_000)
    assert len(str(raised.value)) < 200
