"""The paper broker's state machine: the order book and how orders fill.

No Django, no network. Time comes from an injectable clock; every public method takes the
engine lock, so the ASGI loop and in-process callers (tests) can share one engine. Changes are
announced to listeners (the websocket hub) synchronously, in the order they happen.
The clock, the price book and the portfolio live in their own modules; this one ties them
together.
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from paperbroker import marketdata
from paperbroker.assets import Asset, AssetBook
from paperbroker.clock import CLOCK_MODES, MarketClock, calendar
from paperbroker.config import FILL_MODELS, EngineConfig
from paperbroker.faults import FaultBook
from paperbroker.models import (
    CODE_BAD_REQUEST,
    CODE_FORBIDDEN,
    CODE_NOT_FOUND,
    ApiError,
    Order,
    asset_id_for,
    dstr,
    invalid,
    round_price,
    to_decimal,
    to_whole,
)
from paperbroker.orderbook import OrderBook
from paperbroker.orderspec import OrderSpec, parse_order_request, validate_symbol
from paperbroker.portfolio import Portfolio, liquidation_qty
from paperbroker.prices import PriceBook
from paperbroker.timeutil import (
    ONE_MICROSECOND,
    et_date,
    iso_z,
    parse_timestamp,
    previous_trading_day,
    session_bounds,
    utcnow,
)

_NEVER = datetime.min.replace(tzinfo=UTC)
_TERMINAL_STAMP = {
    "canceled": "canceled_at",
    "expired": "expired_at",
    "rejected": "failed_at",
    "replaced": "replaced_at",
}

Listener = Callable[[str, dict[str, Any]], None]
F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["CLOCK_MODES", "FILL_MODELS", "Engine", "EngineConfig"]


def _locked(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: Engine, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class Engine:
    """One Alpaca equities account, simulated."""

    def __init__(
        self,
        config: EngineConfig | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        clock_mode: str = "open",
    ) -> None:
        if clock_mode not in CLOCK_MODES:
            raise ValueError(f"clock_mode must be one of {CLOCK_MODES}")
        self._wall = clock
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._base_config = config or EngineConfig()
        self._base_clock_mode = clock_mode
        self.account_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "paperbroker/account"))
        self.account_created_at = clock()
        self.faults = FaultBook()
        self.request_log: deque[dict[str, Any]] = deque(maxlen=100_000)
        self.version = 0  # bumped on every change; the state saver watches it
        self._clear(self._base_config)

    # ------------------------------------------------------------------ lifecycle
    def _clear(self, config: EngineConfig) -> None:
        self.config = config
        self.clock = MarketClock(self._wall, mode=self._base_clock_mode)
        self.book = PriceBook()
        self.assets = AssetBook()
        self.portfolio = Portfolio(config.initial_cash)
        self.orders = OrderBook()
        self._seq = 0
        self.tick_no = 0
        self._last_stamp = _NEVER
        self.faults.clear()
        self.request_log.clear()
        self._was_open = self.clock.is_open()

    @_locked
    def reset(self, overrides: Mapping[str, Any] | None = None) -> None:
        """Back to the start-up configuration (plus ``overrides``) with an empty account."""
        self._clear(self._base_config.updated(overrides or {}))
        self._changed()
        self._emit("reset", {})

    @_locked
    def update_config(self, changes: Mapping[str, Any]) -> EngineConfig:
        self.config = self.config.updated(changes)
        self._changed()
        return self.config

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Register for ("trade_update" | "quote" | "trade" | "reset", data) events."""
        with self._lock:
            self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            listener(kind, data)

    def _changed(self) -> None:
        self.version += 1

    # ------------------------------------------------------------------ time and clock
    def now(self) -> datetime:
        return self.clock.now()

    def is_open(self) -> bool:
        return self.clock.is_open()

    def _stamp(self, order: Order | None = None, *, not_before: datetime | None = None) -> datetime:
        """A timestamp strictly later than every earlier one (and than ``order.updated_at``),
        and no earlier than ``not_before``: TradeOps resolves conflicting updates by
        ``updated_at``, so it must never repeat, not even after a future ``submitted_at``."""
        moment = max(self.now(), self._last_stamp + ONE_MICROSECOND)
        if order is not None:
            moment = max(moment, order.updated_at + ONE_MICROSECOND)
        if not_before is not None:
            moment = max(moment, not_before)
        self._last_stamp = moment
        return moment

    @_locked
    def set_clock(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Open/close the market, override next_open/next_close, freeze or thaw time."""
        self.clock.update(changes)
        self._sync_market_state()
        self._changed()
        return self.clock.to_json()

    @_locked
    def clock_json(self) -> dict[str, Any]:
        return self.clock.to_json()

    def calendar(self, start: date, end: date) -> list[dict[str, Any]]:
        return calendar(start, end)

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

    # ------------------------------------------------------------------ prices
    def _last_close_day(self) -> date:
        now = self.now()
        today = et_date(now)
        if today.weekday() < 5 and session_bounds(today)[1] <= now:
            return today
        return previous_trading_day(today)

    def price(self, symbol: str) -> Decimal:
        """Current price; a symbol starts at its last synthetic daily close."""
        with self._lock:
            return self.book.price(symbol, now=self.now(), last_close_day=self._last_close_day())

    @property
    def prices(self) -> dict[str, Decimal]:
        return self.book.prices

    def symbol_adv(self, symbol: str) -> int:
        return self.book.adv_for(symbol)

    @_locked
    def set_prices(self, prices: Mapping[str, Any]) -> dict[str, str | None]:
        """Move prices (as a feed would); resting limit/stop orders may fill."""
        parsed = {}
        for raw_symbol, raw_price in prices.items():
            symbol = validate_symbol(raw_symbol)
            value = to_decimal(raw_price, f"price for {symbol}")
            if value <= 0:
                raise invalid(f"price for {symbol} must be > 0")
            parsed[symbol] = round_price(value)
        self.assets.list_symbols(parsed)  # a symbol with a market is a listed asset
        for symbol, value in parsed.items():
            self._move_price(symbol, value)
        for symbol in parsed:
            for order in self.orders.open_for_symbol(symbol):
                self._execute(order)
        self._changed()
        return {symbol: dstr(value) for symbol, value in parsed.items()}

    def _move_price(self, symbol: str, value: Decimal) -> None:
        self.book.set(symbol, value, self._stamp())
        self._emit("quote", {"symbol": symbol})

    @_locked
    def set_symbol(self, symbol: str, profile: Mapping[str, Any]) -> dict[str, Any]:
        """Per-symbol market profile: ``adv`` (average daily volume), ``price`` and/or
        ``listed`` (ISO date: no bars before it; null: the full synthetic history)."""
        symbol = validate_symbol(symbol)
        unknown = set(profile) - {"adv", "price", "listed"}
        if unknown:
            raise invalid(f"unknown symbol keys: {', '.join(sorted(unknown))}")
        self.assets.list_symbols([symbol])
        if "adv" in profile:
            adv = to_whole(profile["adv"], "adv")
            if adv <= 0:
                raise invalid("adv must be a positive whole number of shares")
            self.book.adv[symbol] = adv
        if "price" in profile:
            self.set_prices({symbol: profile["price"]})
        if "listed" in profile:
            if profile["listed"] is None:
                self.book.listed.pop(symbol, None)
            else:
                try:
                    self.book.listed[symbol] = date.fromisoformat(str(profile["listed"]))
                except ValueError:
                    raise invalid("listed must be an ISO date (YYYY-MM-DD) or null") from None
        self._changed()
        return self.symbol_json(symbol)

    @_locked
    def prices_json(self) -> dict[str, str | None]:
        return self.book.to_json()

    @_locked
    def symbols_json(self) -> dict[str, dict[str, Any]]:
        """Profiles of the symbols given an ``adv`` or a listing date (``GET /_paper/symbols``)."""
        return {
            symbol: self.symbol_json(symbol)
            for symbol in sorted(set(self.book.adv) | set(self.book.listed))
        }

    @_locked
    def symbol_json(self, symbol: str) -> dict[str, Any]:
        return {
            "adv": self.symbol_adv(symbol),
            "price": dstr(self.price(symbol)),
            "reference_price": dstr(marketdata.reference_price(symbol)),
            "listed": self.book.listed[symbol].isoformat() if symbol in self.book.listed else None,
        }

    @_locked
    def symbol_listed(self, symbol: str) -> date | None:
        return self.book.listed.get(symbol)

    @_locked
    def tick(self, count: int = 1) -> int:
        """Advance the simulation: quotes refresh, a random-walk step, clock transitions,
        the next part of partial fills."""
        for _ in range(count):
            self.tick_no += 1
            self.book.refresh_quotes(self.now())
            if self.config.random_walk:
                for symbol in sorted(self.book.prices):
                    self._walk(symbol)
            self._sync_market_state()
            self._execute_all()
        if self.config.random_walk or self.orders.open_count:
            self._changed()
        return self.tick_no

    def _walk(self, symbol: str) -> None:
        moved = self.book.walk_step(
            symbol, seed=self.config.seed, tick_no=self.tick_no, volatility=self.config.volatility
        )
        if moved != self.book.prices[symbol]:
            self._move_price(symbol, moved)

    @_locked
    def quote(self, symbol: str) -> dict[str, Any]:
        """Latest quote around the current price, in the REST wire shape (no ``T``/``S``)."""
        self.price(symbol)
        return self.book.quote(symbol)

    @_locked
    def latest_trade(self, symbol: str) -> tuple[Decimal, datetime]:
        price = self.price(symbol)
        return price, self.book.quoted_at[symbol]

    # ------------------------------------------------------------------ orders: submit
    @_locked
    def submit_order(
        self,
        payload: Mapping[str, Any],
        *,
        origin: str = "api",
        check_buying_power: bool = True,
    ) -> Order:
        """Validate and accept one order as ``POST /v2/orders`` does; it may fill at once."""
        self._sync_market_state()
        spec = parse_order_request(payload, allow_submitted_at=origin == "control")
        self._check_unique(spec)
        self._check_asset(spec)
        self._check_stop_price(spec)
        if check_buying_power:
            self._check_buying_power(spec)
        order = self._create(spec, origin)
        self._changed()
        return order

    @_locked
    def submit_orders(self, payloads: Iterable[Mapping[str, Any]]) -> list[Order]:
        """Bulk placement behind the client's back: all-or-nothing validation first."""
        self._sync_market_state()
        specs = []
        seen: set[str] = set()
        for index, payload in enumerate(payloads):
            try:
                spec = parse_order_request(payload, allow_submitted_at=True)
                self._check_unique(spec, also=seen)
                self._check_asset(spec)
                self._check_stop_price(spec)
            except ApiError as exc:
                raise ApiError(exc.status, exc.code, f"orders[{index}]: {exc.message}") from None
            seen.add(spec.client_order_id)
            specs.append(spec)
        orders = [self._create(spec, "control") for spec in specs]
        self._changed()
        return orders

    @_locked
    def replace_order(self, order_id: str, changes: Mapping[str, Any]) -> Order:
        """``PATCH /v2/orders/{id}``: a new order replaces an unfilled open one; the old one
        ends ``replaced`` (event ``replaced``), the new one starts with ``new``."""
        old = self.get_order(order_id)
        if old.status not in ("new", "accepted"):
            raise invalid("order is not replaceable")
        wanted = {
            key: changes[key]
            for key in ("qty", "time_in_force", "limit_price", "stop_price", "client_order_id")
            if changes.get(key) is not None
        }
        if not wanted:
            raise invalid("at least one of qty, time_in_force, limit_price, stop_price needed")
        payload = {
            "symbol": old.symbol,
            "side": old.side,
            "type": old.type,
            "time_in_force": old.time_in_force,
            "qty": old.qty,
            "limit_price": dstr(old.limit_price),
            "stop_price": dstr(old.stop_price),
            "extended_hours": old.extended_hours,
        } | wanted
        spec = parse_order_request(payload, allow_submitted_at=False)
        self._check_unique(spec)
        self.assets.check_order(spec.symbol, opens_short=False)
        self._check_stop_price(spec)
        self.orders.mark_closed(old)  # its buying power is released for the check
        try:
            self._check_buying_power(spec)
        except ApiError:
            self.orders.mark_open(old)
            raise
        self._close_order(old, "replaced")
        new = self._create(spec, old.origin, replaces=old)
        self._changed()
        return new

    def _check_unique(self, spec: OrderSpec, also: set[str] | None = None) -> None:
        # Unique for the account's whole history, canceled orders included (alpaca-py #260).
        taken = self.orders.has_client_order_id(spec.client_order_id)
        if taken or (also and spec.client_order_id in also):
            raise ApiError(422, CODE_BAD_REQUEST, "client_order_id must be unique")

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
            position_intent=_position_intent(spec.side, self.portfolio.qty(spec.symbol)),
            origin=origin,
            replaces=replaces.id if replaces else None,
        )
        if replaces is not None:
            replaces.replaced_by = order.id
        self.orders.add(order)
        self._emit_trade_update(order.status, order)
        self._execute(order)
        return order

    def _check_asset(self, spec: OrderSpec) -> None:
        opens_short = spec.side == "sell" and spec.qty > self._sellable(spec.symbol)
        self.assets.check_order(spec.symbol, opens_short=opens_short)

    def _sellable(self, symbol: str) -> int:
        """Shares a sell can take without going short: the long position minus what open
        sells already claim."""
        held = sum(o.remaining for o in self.orders.open_for_symbol(symbol) if o.side == "sell")
        return max(self.portfolio.qty(symbol), 0) - held

    # ------------------------------------------------------------------ assets
    @_locked
    def asset(self, symbol_or_id: str) -> Asset:
        return self.assets.find(symbol_or_id)

    @_locked
    def list_assets(
        self, *, status: str | None, asset_class: str | None, exchange: str | None
    ) -> list[Asset]:
        return self.assets.query(status=status, asset_class=asset_class, exchange=exchange)

    @_locked
    def set_assets(self, changes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Add, halt, delist or restrict assets (``POST /_paper/assets``); all or nothing."""
        before = dict(self.assets.assets)
        try:
            updated = {symbol: self.assets.update(symbol, spec) for symbol, spec in changes.items()}
        except ApiError:
            self.assets.assets = before
            raise
        self._changed()
        return {asset.symbol: asset.to_json() for asset in updated.values()}

    @_locked
    def assets_json(self) -> dict[str, dict[str, Any]]:
        return self.assets.to_json()

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
        increase = _exposure_increase(self.portfolio.qty(spec.symbol), spec.side, spec.qty)
        if not increase:
            return
        needed = increase * (spec.limit_price or spec.stop_price or self.price(spec.symbol))
        if needed > self.buying_power():
            raise ApiError(403, CODE_FORBIDDEN, "insufficient buying power")

    # ------------------------------------------------------------------ orders: execution
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
        if not _marketable(order, price):
            if order.time_in_force in ("ioc", "fok"):
                self._close_order(order, "canceled")
            return
        if self.config.fill_model == "partial":
            if order.last_fill_tick == self.tick_no:
                return  # one part per tick
            if not order.planned_parts:
                order.planned_parts = _split(order.remaining, self.config.partial_fills)
            if order.time_in_force == "fok" and order.planned_parts[0] < order.remaining:
                self._close_order(order, "canceled")  # not enough liquidity at once
                return
            quantity = order.planned_parts.pop(0)
        else:
            quantity = order.remaining
        self._fill(order, quantity, _fill_price(order, price))
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

    # ------------------------------------------------------------------ orders: queries
    @_locked
    def get_order(self, order_id: str) -> Order:
        return self.orders.get(order_id)

    @_locked
    def get_order_by_client_id(self, client_order_id: str) -> Order:
        return self.orders.by_client_order_id(client_order_id)

    @_locked
    def list_orders(
        self,
        *,
        status: str = "open",
        limit: int = 50,
        after: datetime | None = None,
        until: datetime | None = None,
        direction: str = "desc",
        symbols: frozenset[str] | None = None,
        side: str | None = None,
    ) -> list[Order]:
        return self.orders.query(
            status=status,
            limit=limit,
            after=after,
            until=until,
            direction=direction,
            symbols=symbols,
            side=side,
        )

    # ------------------------------------------------------------------ orders: changes
    @_locked
    def cancel_order(
        self, order_id: str, *, silent: bool = False, by_client: bool = False
    ) -> Order:
        order = self.orders.find(order_id) if by_client else self.get_order(order_id)
        if not order.is_open:
            raise invalid("order is not cancelable")
        self._close_order(order, "canceled", silent=silent)
        self._changed()
        return order

    @_locked
    def cancel_all_orders(self) -> list[dict[str, Any]]:
        results = []
        for order in self.orders.open_orders():
            self._close_order(order, "canceled")
            results.append({"id": order.id, "status": 200})
        self._changed()
        return results

    @_locked
    def fill_order(
        self,
        order_ref: str,
        *,
        qty: Any = None,
        price: Any = None,
        silent: bool = False,
    ) -> Order:
        """Operator fill (control API), regardless of clock or fill model."""
        order = self.orders.find(order_ref)
        if not order.is_open:
            raise invalid(f"order is {order.status}, not fillable")
        quantity = order.remaining if qty is None else to_whole(qty, "qty")
        if not 0 < quantity <= order.remaining:
            raise invalid(f"qty must be between 1 and {order.remaining}")
        if price is None:
            fill_price = _fill_price(order, self.price(order.symbol))
        else:
            fill_price = round_price(to_decimal(price, "price"))
        if order.planned_parts:
            order.planned_parts = _split(order.remaining - quantity, len(order.planned_parts))
        self._fill(order, quantity, fill_price, silent=silent)
        self._changed()
        return order

    @_locked
    def reject_order(self, order_ref: str, *, silent: bool = False) -> Order:
        order = self.orders.find(order_ref)
        if not order.is_open:
            raise invalid(f"order is {order.status}, not rejectable")
        self._close_order(order, "rejected", silent=silent)
        self._changed()
        return order

    # ------------------------------------------------------------------ positions and account
    def _held_for_orders(self, symbol: str, position_qty: int) -> int:
        closing_side = "sell" if position_qty > 0 else "buy"
        return sum(
            order.remaining
            for order in self.orders.open_for_symbol(symbol)
            if order.side == closing_side
        )

    def _resolve_position_symbol(self, symbol_or_asset_id: str) -> str:
        for symbol in self.portfolio.positions:
            if asset_id_for(symbol) == symbol_or_asset_id:
                return symbol
        return symbol_or_asset_id.upper()

    @_locked
    def position_json(self, symbol_or_asset_id: str) -> dict[str, Any]:
        symbol = self._resolve_position_symbol(symbol_or_asset_id)
        position = self.portfolio.positions.get(symbol)
        if position is None:
            raise ApiError(404, CODE_NOT_FOUND, "position does not exist")
        lastday = self.book.lastday_price(symbol, previous_trading_day(et_date(self.now())))
        held = self._held_for_orders(symbol, position.qty)
        return position.to_json(self.price(symbol), lastday, held)

    @_locked
    def positions_json(self) -> list[dict[str, Any]]:
        return [self.position_json(symbol) for symbol in sorted(self.portfolio.positions)]

    @_locked
    def close_position(
        self, symbol_or_asset_id: str, *, qty: str | None = None, percentage: str | None = None
    ) -> Order:
        """Liquidate all or part of a position with a market order (``DELETE /v2/positions``)."""
        symbol = self._resolve_position_symbol(symbol_or_asset_id)
        position = self.portfolio.positions.get(symbol)
        if position is None:
            raise ApiError(404, CODE_NOT_FOUND, "position does not exist")
        held = self._held_for_orders(symbol, position.qty)
        requested = liquidation_qty(position, held, qty=qty, percentage=percentage)
        payload = {
            "symbol": symbol,
            "qty": requested,
            "side": "sell" if position.qty > 0 else "buy",
            "type": "market",
            "time_in_force": "day",
        }
        return self.submit_order(payload, check_buying_power=False)

    @_locked
    def close_all_positions(self, *, cancel_orders: bool = False) -> list[dict[str, Any]]:
        if cancel_orders:
            self.cancel_all_orders()
        results = []
        for symbol in sorted(self.portfolio.positions):
            try:
                order = self.close_position(symbol)
                results.append({"symbol": symbol, "status": 200, "body": order.to_json()})
            except ApiError as exc:
                results.append({"symbol": symbol, "status": exc.status, "body": exc.body()})
        return results

    def _reserved_for_orders(self) -> Decimal:
        """Buying power held by open orders that would add exposure."""
        reserved = Decimal(0)
        for order in self.orders.open_orders():
            if _exposure_increase(self.portfolio.qty(order.symbol), order.side, 1):
                price = order.limit_price or order.stop_price or self.price(order.symbol)
                reserved += order.remaining * price
        return reserved

    @_locked
    def buying_power(self) -> Decimal:
        return self.portfolio.buying_power(self.price, self._reserved_for_orders())

    @_locked
    def account_json(self) -> dict[str, Any]:
        return self.portfolio.account_json(
            account_id=self.account_id,
            created_at=self.account_created_at,
            initial_cash=self.config.initial_cash,
            price_of=self.price,
            reserved=self._reserved_for_orders(),
        )

    # ------------------------------------------------------------------ state
    @_locked
    def log_request(self, entry: dict[str, Any]) -> None:
        self.request_log.append(entry)

    @_locked
    def state_json(self, *, include_orders: bool = True) -> dict[str, Any]:
        """Everything an operator or a test wants to see (``GET /_paper/state``)."""
        orders = None
        if include_orders:
            orders = [order.to_json() | {"origin": order.origin} for order in self.orders]
        clock = self.clock.to_json() | {
            "mode": self.clock.mode,
            "frozen_now": iso_z(self.clock.frozen_now),
        }
        return {
            "orders": orders,
            "order_count": len(self.orders),
            "open_order_count": self.orders.open_count,
            "positions": self.positions_json(),
            "account": self.account_json(),
            "clock": clock,
            "prices": self.prices_json(),
            "symbols": self.symbols_json(),
            "config": self.config.to_json(),
            "faults": self.faults.to_json(),
            "tick": self.tick_no,
        }

    @_locked
    def snapshot(self) -> dict[str, Any]:
        """What the state file holds (the request log and faults are deliberately transient)."""
        return {
            "format": 1,
            "config": self.config.to_json(),
            "clock": self.clock.snapshot(),
            "book": self.book.snapshot(),
            "assets": self.assets.snapshot(),
            "portfolio": self.portfolio.snapshot(),
            "orders": [order.to_state() for order in self.orders],
            "seq": self._seq,
            "tick_no": self.tick_no,
            "last_stamp": iso_z(self._last_stamp) if self._last_stamp > _NEVER else None,
            "was_open": self._was_open,
        }

    @_locked
    def restore(self, data: Mapping[str, Any]) -> None:
        if data.get("format") != 1:
            raise ValueError("unsupported paper broker state format")
        self._clear(EngineConfig().updated(data["config"]))
        self.clock.restore(data["clock"])
        self.book.restore(data["book"], self.now())
        self.assets.restore(data.get("assets"))
        self.portfolio.restore(data["portfolio"])
        for raw in data["orders"]:
            self.orders.add(Order.from_state(raw))
        self._seq = int(data["seq"])
        self.tick_no = int(data["tick_no"])
        if data.get("last_stamp"):
            self._last_stamp = parse_timestamp(data["last_stamp"])
        # The market may have opened or closed while the broker was down: day orders saved
        # during the session must expire now, orders accepted while closed be released.
        self._was_open = bool(data.get("was_open", self.is_open()))
        self._sync_market_state()
        self._changed()

    @_locked
    def apply_startup_options(self, config: Mapping[str, Any], clock_mode: str | None) -> None:
        """Options given on the command line win over a restored state file, and become the
        baseline that ``reset`` returns to."""
        self._base_config = self._base_config.updated(config)
        self.config = self.config.updated(config)
        if clock_mode is not None:
            self._base_clock_mode = clock_mode
            self.clock.mode = clock_mode
            self._sync_market_state()


def _position_intent(side: str, position_qty: int) -> str:
    if side == "buy":
        return "buy_to_close" if position_qty < 0 else "buy_to_open"
    return "sell_to_close" if position_qty > 0 else "sell_to_open"


def _exposure_increase(position_qty: int, side: str, qty: int) -> int:
    """Shares of an order that open or extend a position (the part that needs buying power)."""
    signed = qty if side == "buy" else -qty
    if position_qty == 0 or (position_qty > 0) == (signed > 0):
        return qty
    return max(0, qty - abs(position_qty))


def _marketable(order: Order, price: Decimal) -> bool:
    if order.stop_price is not None and not order.stop_triggered:
        return False
    if order.limit_price is None:
        return True
    return price <= order.limit_price if order.side == "buy" else price >= order.limit_price


def _fill_price(order: Order, price: Decimal) -> Decimal:
    """Market and stop orders take the current price; a limit never fills worse than its
    limit (a gap through the limit fills at the better current price)."""
    if order.limit_price is None:
        return price
    return min(price, order.limit_price) if order.side == "buy" else max(price, order.limit_price)


def _split(quantity: int, parts: int) -> list[int]:
    if quantity <= 0:
        return []
    parts = max(1, min(parts, quantity))
    base, extra = divmod(quantity, parts)
    return [base + (1 if index < extra else 0) for index in range(parts)]
