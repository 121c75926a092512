"""Position arithmetic and the reduce-only rule. Pure: plain numbers in, plain numbers out.

Reduce-only is judged on the worst case. The fix plan's formula nets open orders of both sides
into an "effective position" (and mis-signs it for shorts: it adds open sells to a short as if
they reduced it). Netting lets an order through as "reducing" on the assumption that working
orders on the other side will fill; if they are canceled instead, the "reducing" order opens or
flips a position: new risk while the gate is closed. Here an order reduces only if it cannot
increase the absolute position whatever subset of the open orders fills:

- long ``p > 0``: sells up to ``p - open_sell`` (what working sells have not already claimed);
- short ``p < 0``: buys up to ``|p| - open_buy``;
- flat: nothing can be reduced.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

PRICE = Decimal("0.0001")


def signed(side: str, qty: int) -> int:
    return qty if side == "buy" else -qty


@dataclass(frozen=True)
class ReduceOnlyVerdict:
    allowed: bool
    reason: str
    position: int
    available_to_close: int


def reduce_only_verdict(
    *, position: int, open_buy: int, open_sell: int, side: str, qty: int
) -> ReduceOnlyVerdict:
    """May an order of ``side``/``qty`` pass as reduce-only against this live position?"""
    if position > 0:
        reducing_side, available = "sell", max(position - open_sell, 0)
    elif position < 0:
        reducing_side, available = "buy", max(-position - open_buy, 0)
    else:
        return ReduceOnlyVerdict(False, "flat: nothing to reduce", position, 0)
    if side != reducing_side:
        return ReduceOnlyVerdict(
            False,
            f"a {side} increases a {'long' if position > 0 else 'short'} position",
            position,
            available,
        )
    if qty > available:
        return ReduceOnlyVerdict(
            False,
            f"{qty} exceeds the {available} shares that can still be closed "
            f"(position {position}, working {reducing_side} orders "
            f"{open_sell if position > 0 else open_buy})",
            position,
            available,
        )
    return ReduceOnlyVerdict(True, "reduces the position", position, available)


def fill_price_of_delta(
    *,
    old_qty: int,
    old_avg: Decimal | None,
    new_qty: int,
    new_avg: Decimal | None,
) -> Decimal | None:
    """The average price of the shares between two cumulative fill reports of one order."""
    if new_avg is None or new_qty <= old_qty:
        return None
    if old_qty == 0 or old_avg is None:
        return new_avg
    value = (new_avg * new_qty - old_avg * old_qty) / (new_qty - old_qty)
    return value.quantize(PRICE) if value > 0 else new_avg


def position_after_fill(
    *, qty: int, avg_price: Decimal | None, fill_qty: int, fill_price: Decimal | None
) -> tuple[int, Decimal | None]:
    """Apply a signed fill: adding re-averages, reducing keeps the average, crossing zero starts
    a new average at the fill price, flat has no average."""
    new_qty = qty + fill_qty
    if new_qty == 0:
        return 0, None
    if fill_price is None:
        return new_qty, avg_price
    if qty == 0 or (qty > 0) == (fill_qty > 0):
        base = avg_price if avg_price is not None else fill_price
        total = base * abs(qty) + fill_price * abs(fill_qty)
        return new_qty, (total / abs(new_qty)).quantize(PRICE)
    if (qty > 0) != (new_qty > 0):
        return new_qty, fill_price
    return new_qty, avg_price


def short_sale_qty(*, position: int, open_sell: int, qty: int) -> int:
    """How many shares of a sell of ``qty`` would open or extend a short, in the worst case
    the reduce-only rule also assumes: every working sell fills, no working buy does. 0 means
    the sell only closes a long (it needs no shortable asset)."""
    return max(qty - max(position - open_sell, 0), 0) if position > 0 else qty
