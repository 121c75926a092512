"""Position arithmetic and the worst-case reduce-only rule."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orders.positions import (
    fill_price_of_delta,
    position_after_fill,
    reduce_only_verdict,
    short_sale_qty,
)


@pytest.mark.parametrize(
    ("position", "open_buy", "open_sell", "side", "qty", "allowed"),
    [
        (100, 0, 0, "sell", 100, True),  # close a long
        (100, 0, 0, "sell", 40, True),
        (100, 0, 0, "sell", 101, False),  # would flip to short
        (100, 0, 0, "buy", 1, False),  # increases the long
        (100, 0, 60, "sell", 40, True),  # working sells already claim 60
        (100, 0, 60, "sell", 41, False),
        (100, 500, 0, "sell", 101, False),  # an open buy may be canceled: it cannot help
        (-50, 0, 0, "buy", 50, True),  # cover a short
        (-50, 0, 0, "buy", 51, False),
        (-50, 0, 0, "sell", 1, False),
        (-50, 20, 0, "buy", 31, False),
        (0, 0, 0, "sell", 1, False),  # flat: nothing to reduce
        (0, 100, 0, "sell", 50, False),  # flat with a working buy: selling could open a short
    ],
)
def test_reduce_only_table(
    position: int, open_buy: int, open_sell: int, side: str, qty: int, allowed: bool
) -> None:
    verdict = reduce_only_verdict(
        position=position, open_buy=open_buy, open_sell=open_sell, side=side, qty=qty
    )
    assert verdict.allowed is allowed, verdict.reason


@given(
    st.integers(-1000, 1000),
    st.integers(0, 1000),
    st.integers(0, 1000),
    st.sampled_from(["buy", "sell"]),
    st.integers(1, 2000),
)
def test_an_allowed_reduce_only_order_never_grows_the_position(
    position: int, open_buy: int, open_sell: int, side: str, qty: int
) -> None:
    """Even in the worst case (every working order on the reducing side fills, none on the
    other), an allowed order neither flips the position nor grows it beyond today's."""
    verdict = reduce_only_verdict(
        position=position, open_buy=open_buy, open_sell=open_sell, side=side, qty=qty
    )
    if not verdict.allowed:
        return
    new = qty if side == "buy" else -qty
    if position > 0:
        final = position - open_sell + new  # every working sell fills, no buy does
        assert 0 <= final <= position
    else:
        final = position + open_buy + new
        assert position <= final <= 0


@pytest.mark.parametrize(
    ("qty", "avg", "fill", "price", "expected"),
    [
        (0, None, 10, Decimal("100"), (10, Decimal("100.0000"))),
        (10, Decimal("100"), 10, Decimal("110"), (20, Decimal("105.0000"))),
        (20, Decimal("105"), -5, Decimal("120"), (15, Decimal("105"))),  # reduce keeps avg
        (15, Decimal("105"), -15, Decimal("120"), (0, None)),
        (10, Decimal("100"), -30, Decimal("90"), (-20, Decimal("90"))),  # crosses zero
        (-10, Decimal("50"), -10, Decimal("40"), (-20, Decimal("45.0000"))),
        (5, Decimal("10"), 5, None, (10, Decimal("10"))),
    ],
)
def test_position_after_fill(
    qty: int, avg: Decimal | None, fill: int, price: Decimal | None, expected: tuple
) -> None:
    assert position_after_fill(qty=qty, avg_price=avg, fill_qty=fill, fill_price=price) == expected


def test_fill_price_of_a_partial_fill_delta() -> None:
    # 10 @ 100 then cumulative 30 @ 110 -> the 20 new shares cost 115
    assert fill_price_of_delta(
        old_qty=10, old_avg=Decimal("100"), new_qty=30, new_avg=Decimal("110")
    ) == Decimal("115.0000")
    assert fill_price_of_delta(
        old_qty=0, old_avg=None, new_qty=5, new_avg=Decimal("9.5")
    ) == Decimal("9.5")
    assert (
        fill_price_of_delta(old_qty=5, old_avg=Decimal("9"), new_qty=5, new_avg=Decimal("9"))
        is None
    )


@pytest.mark.parametrize(
    ("position", "open_sell", "qty", "short"),
    [
        (10, 0, 10, 0),  # closes the long exactly
        (10, 0, 11, 1),
        (10, 6, 4, 0),  # working sells claim 6 of the 10
        (10, 6, 5, 1),
        (10, 15, 2, 2),  # working sells already take it short: all of this one is short
        (0, 0, 3, 3),  # flat
        (-5, 0, 1, 1),  # extends a short
    ],
)
def test_short_sale_qty_is_the_worst_case_short(
    position: int, open_sell: int, qty: int, short: int
) -> None:
    assert short_sale_qty(position=position, open_sell=open_sell, qty=qty) == short
