"""How the paper broker's orders are accepted, fill and end: the checks Alpaca makes before
it takes an order, the order's entry into the book, fills by order type, price and fill model,
terminal statuses, the market's open/close transitions, and the trade-update events.

``OrderExecution`` is part of ``paperbroker.engine.Engine`` (one state, one lock): its methods
run under the engine lock, taken by the public ``Engine`` method that calls them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from paperbroker.assets import AssetBook
from paperbroker.config import EngineConfig
from paperbroker.models import CODE_BAD_REQUEST, CODE_FORBIDDEN, ApiError, Order, dstr, invalid
from paperbroker.orderbook import OrderBook
from paperbroker.orderspec import OrderSpec
from paperbroker.portfolio import Portfolio
from paperbroker.timeutil import iso_z

Listener = Callable[[str, dict[str, Any]], None]

_TERMINAL_STAMP = {
    "canceled": "canceled_at",
    "expired": "expired_at",
    "rejected": "failed_at",
    "replaced": "replaced_at",
}


class OrderExecution:
    """The order lifecycle of ``Engine`` (see the module docstring)."""

    # Engine's state this part reads and writes (set by Engine._clear).
    config: EngineConfig
    orders: OrderBook
    portfolio: Portfolio
    assets: AssetBook
    tick_no: int
    _seq: int
    _was_open: bool
    _listeners: list[Listener]
    # ... and Engine's methods: now, is_open, price, buying_power, _stamp, _emit, _changed.

    # --- acceptance: what Alpaca checks before it takes an order ------------------------------
    def _check_unique(self, spec: OrderSpec, also: set[str] | None = None) -> None:
        # Unique for the account's whole history, canceled orders included (alpaca-py #260).
        taken = self.orders.has_client_order_id(spec.client_order_id)
        if taken or (also and spec.client_order_id in also):
            raise ApiError(422, CODE_BAD_REQUEST, "client_order_id must be unique")

    def _check_asset(self, spec: OrderSpec) -> None:
        opens_short = spec.side == "sell" and spec.qty > self._sellable(spec.symbol)
        self.assets.check_order(spec.symbol, opens_short=opens_short)

    def _sellable(self, symbol: str) -> int:
        """Shares a sell can take without going short: the long position minus what open
        sells already claim."""
        held = sum(o.remaining for o in self.orders.open_for_symbol(symbol) if o.side == "sell")
        return max(self.portfolio.qty(symbol), 0) - held

    def _check_stop_price(self, spec: OrderSpec) -> None:
        # Alpaca refuses stops that would trigger immediately (42210000).
        if spec.stop_price is None:
            return
        current = self.price(spec.symbol)
        if spec.side == "buy" and spec.stop_price <= current:
            raise invalid(f"stop price must be greater than current price ({dstr(current)})")
        if spec.side == "sell" and spec.stop_price >= current:
            raise invalid(f"stop price must be less than current price ({dstr(current)})")

    def _check_buying_power(self, spec: OrderSpec) -> None:
        increase = exposure_increase(self.portfolio.qty(spec.symbol), spec.side, spec.qty)
        if not increase:
            return
        needed = increase * (spec.limit_price or spec.stop_price or self.price(spec.symbol))
        if needed > self.buying_power():
            raise ApiError(403, CODE_FORBIDDEN, "insufficient buying power")

    def _create(self, spec: OrderSpec, origin: str, replaces: Order | None = None) -> Order:
        now = self._stamp(not_before=spec.submitted_at)
        submitted = spec.submitted_at or now
        self._seq += 1
        order = Order(
            id=str(uuid.uuid4()),
            client_order_id=spec.client_order_id,
            symbol=spec.symbol,
            side=spec.side,
            type=spec.type,
            time_in_force=spec.time_in_force,
            qty=spec.qty,
            limit_price=spec.limit_price,
            stop_price=spec.stop_price,
            extended_hours=spec.extended_hours,
            status="new" if self.is_open() else "accepted",
            created_at=submitted,
            updated_at=now,
            submitted_at=submitted,
            seq=self._seq,
            position_intent=position_intent(spec.side, self.portfolio.qty(spec.symbol)),
            origin=origin,
            replaces=replaces.id if replaces else None,
        )
        if replaces is not None:
            replaces.replaced_by = order.id
        self.orders.add(order)
        self._emit_trade_update(order.status, order)
        self._execute(order)
        return order

    # --- execution: fills and terminal statuses -----------------------------------------------
    def _sync_market_state(self) -> None:
        """Act on open/close transitions: release waiting orders at the open, expire day
        orders at the close (orders accepted while closed wait for the next session)."""
        is_open = self.is_open()
        if is_open == self._was_open:
            return
        self._was_open = is_open
        if is_open:
            for order in self.orders.open_orders():
                if order.status == "accepted":
                    order.status = "new"
                    order.updated_at = self._stamp(order)
                    self._emit_trade_update("new", order)
            self._execute_all()
        else:
            for order in self.orders.open_orders():
                if order.time_in_force == "day" and order.status != "accepted":
                    self._close_order(order, "expired")
        self._changed()

    def _execute_all(self) -> None:
        for order in self.orders.open_orders():
            self._execute(order)

    def _execute(self, order: Order) -> None:
        """Fill whatever the order type, the current price and the fill model allow now."""
        if not order.is_open or not self.is_open() or self.config.fill_model == "manual":
            return
        price = self.price(order.symbol)
        if order.stop_price is not None and not order.stop_triggered:
            above = price >= order.stop_price
            order.stop_triggered = above if order.side == "buy" else price <= order.stop_price
        if not marketable(order, price):
            if order.time_in_force in ("ioc", "fok"):
                self._close_order(order, "canceled")
            return
        if self.config.fill_model == "partial":
            if order.last_fill_tick == self.tick_no:
                return  # one part per tick
            if not order.planned_parts:
                order.planned_parts = split_parts(order.remaining, self.config.partial_fills)
            if order.time_in_force == "fok" and order.planned_parts[0] < order.remaining:
                self._close_order(order, "canceled")  # not enough liquidity at once
                return
            quantity = order.planned_parts.pop(0)
        else:
            quantity = order.remaining
        self._fill(order, quantity, fill_price_for(order, price))
        order.last_fill_tick = self.tick_no
        if order.is_open and order.time_in_force == "ioc":
            self._close_order(order, "canceled")

    def _fill(self, order: Order, quantity: int, price: Decimal, *, silent: bool = False) -> None:
        moment = self._stamp(order)
        paid = (order.filled_avg_price or Decimal(0)) * order.filled_qty + price * quantity
        order.filled_qty += quantity
        order.filled_avg_price = paid / order.filled_qty
        order.updated_at = moment
        if order.filled_qty == order.qty:
            order.status = "filled"
            order.filled_at = moment
            order.planned_parts = []
            self.orders.mark_closed(order)
        else:
            order.status = "partially_filled"
        signed = quantity if order.side == "buy" else -quantity
        position_qty = self.portfolio.apply_fill(order.symbol, signed, price)
        if silent:
            return
        event = "fill" if order.status == "filled" else "partial_fill"
        self._emit_trade_update(
            event,
            order,
            execution_id=str(uuid.uuid4()),
            price=dstr(price),
            qty=str(quantity),
            position_qty=str(position_qty),
        )
        self._emit("trade", {"symbol": order.symbol, "price": price, "size": quantity})

    def _close_order(self, order: Order, status: str, *, silent: bool = False) -> None:
        """Move an open order to a terminal status and tell the stream (unless silent)."""
        moment = self._stamp(order)
        order.status = status
        order.updated_at = moment
        order.planned_parts = []
        setattr(order, _TERMINAL_STAMP[status], moment)
        self.orders.mark_closed(order)
        if not silent:
            self._emit_trade_update(status, order)

    def _emit_trade_update(self, event: str, order: Order, **extra: Any) -> None:
        if not self._listeners:
            return  # building the payload is the expensive part of bulk placement
        data = {"event": event, "order": order.to_json(), "timestamp": iso_z(order.updated_at)}
        self._emit("trade_update", data | extra)


def position_intent(side: str, position_qty: int) -> str:
    if side == "buy":
        return "buy_to_close" if position_qty < 0 else "buy_to_open"
    return "sell_to_close" if position_qty > 0 else "sell_to_open"


def exposure_increase(position_qty: int, side: str, qty: int) -> int:
    """Shares of an order that open or extend a position (the part that needs buying power)."""
    signed = qty if side == "buy" else -qty
    if position_qty == 0 or (position_qty > 0) == (signed > 0):
        return qty
    return max(0, qty - abs(position_qty))


def marketable(order: Order, price: Decimal) -> bool:
    if order.stop_price is not None and not order.stop_triggered:
        return False
    if order.limit_price is None:
        return True
    return price <= order.limit_price if order.side == "buy" else price >= order.limit_price


def fill_price_for(order: Order, price: Decimal) -> Decimal:
    """Market and stop orders take the current price; a limit never fills worse than its
    limit (a gap through the limit fills at the better current price)."""
    if order.limit_price is None:
        return price
    return min(price, order.limit_price) if order.side == "buy" else max(price, order.limit_price)


def split_parts(quantity: int, parts: int) -> list[int]:
    if quantity <= 0:
        return []
    parts = max(1, min(parts, quantity))
    base, extra = divmod(quantity, parts)
    return [base + (1 if index < extra else 0) for index in range(parts)]
