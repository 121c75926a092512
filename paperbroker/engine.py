"""The paper broker's state machine: the order book and how orders fill.

No Django, no network. Time comes from an injectable clock; every public method takes the
engine lock, so the ASGI loop and in-process callers (tests) can share one engine. Changes are
announced to listeners (the websocket hub) synchronously, in the order they happen.
The clock, the price book and the portfolio live in their own modules; this one ties them
together. ``Engine`` is one class (one state, one lock) written in three modules: this one
(lifecycle, clock, prices, assets, the order and position API), ``execution`` (how orders are
accepted, fill and end) and ``snapshot`` (the state as a whole: view, state file, restore).
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from paperbroker import marketdata
from paperbroker.assets import Asset, AssetBook
from paperbroker.clock import CLOCK_MODES, MarketClock, calendar
from paperbroker.config import FILL_MODELS, EngineConfig
from paperbroker.execution import (
    Listener,
    OrderExecution,
    exposure_increase,
    fill_price_for,
    split_parts,
)
from paperbroker.faults import FaultBook
from paperbroker.locking import locked
from paperbroker.models import (
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
from paperbroker.orderspec import parse_order_request, validate_symbol
from paperbroker.portfolio import Portfolio, liquidation_qty
from paperbroker.prices import PriceBook
from paperbroker.snapshot import EngineSnapshot
from paperbroker.timeutil import (
    NEVER,
    ONE_MICROSECOND,
    et_date,
    previous_trading_day,
    session_bounds,
    utcnow,
)

__all__ = ["CLOCK_MODES", "FILL_MODELS", "Engine", "EngineConfig"]


class Engine(OrderExecution, EngineSnapshot):
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
        self._last_stamp = NEVER
        self.faults.clear()
        self.faults.reseed(config.seed)  # probabilistic faults repeat run after run
        self.request_log.clear()
        self._was_open = self.clock.is_open()

    @locked
    def reset(self, overrides: Mapping[str, Any] | None = None) -> None:
        """Back to the start-up configuration (plus ``overrides``) with an empty account."""
        self._clear(self._base_config.updated(overrides or {}))
        self._changed()
        self._emit("reset", {})

    @locked
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

    @locked
    def set_clock(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Open/close the market, override next_open/next_close, freeze or thaw time."""
        self.clock.update(changes)
        self._sync_market_state()
        self._changed()
        return self.clock.to_json()

    @locked
    def clock_json(self) -> dict[str, Any]:
        return self.clock.to_json()

    def calendar(self, start: date, end: date) -> list[dict[str, Any]]:
        return calendar(start, end)

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

    @locked
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

    @locked
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

    @locked
    def prices_json(self) -> dict[str, str | None]:
        return self.book.to_json()

    @locked
    def symbols_json(self) -> dict[str, dict[str, Any]]:
        """Profiles of the symbols given an ``adv`` or a listing date (``GET /_paper/symbols``)."""
        return {
            symbol: self.symbol_json(symbol)
            for symbol in sorted(set(self.book.adv) | set(self.book.listed))
        }

    @locked
    def symbol_json(self, symbol: str) -> dict[str, Any]:
        return {
            "adv": self.symbol_adv(symbol),
            "price": dstr(self.price(symbol)),
            "reference_price": dstr(marketdata.reference_price(symbol)),
            "listed": self.book.listed[symbol].isoformat() if symbol in self.book.listed else None,
        }

    @locked
    def symbol_listed(self, symbol: str) -> date | None:
        return self.book.listed.get(symbol)

    @locked
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

    @locked
    def quote(self, symbol: str) -> dict[str, Any]:
        """Latest quote around the current price, in the REST wire shape (no ``T``/``S``)."""
        self.price(symbol)
        return self.book.quote(symbol)

    @locked
    def latest_trade(self, symbol: str) -> tuple[Decimal, datetime]:
        price = self.price(symbol)
        return price, self.book.quoted_at[symbol]

    # ------------------------------------------------------------------ orders: submit
    @locked
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

    @locked
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

    @locked
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

    # ------------------------------------------------------------------ assets
    @locked
    def asset(self, symbol_or_id: str) -> Asset:
        return self.assets.find(symbol_or_id)

    @locked
    def list_assets(
        self, *, status: str | None, asset_class: str | None, exchange: str | None
    ) -> list[Asset]:
        return self.assets.query(status=status, asset_class=asset_class, exchange=exchange)

    @locked
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

    @locked
    def assets_json(self) -> dict[str, dict[str, Any]]:
        return self.assets.to_json()

    # ------------------------------------------------------------------ orders: queries
    @locked
    def get_order(self, order_id: str) -> Order:
        return self.orders.get(order_id)

    @locked
    def get_order_by_client_id(self, client_order_id: str) -> Order:
        return self.orders.by_client_order_id(client_order_id)

    @locked
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
    @locked
    def cancel_order(
        self, order_id: str, *, silent: bool = False, by_client: bool = False
    ) -> Order:
        order = self.orders.find(order_id) if by_client else self.get_order(order_id)
        if not order.is_open:
            raise invalid("order is not cancelable")
        self._close_order(order, "canceled", silent=silent)
        self._changed()
        return order

    @locked
    def cancel_all_orders(self) -> list[dict[str, Any]]:
        results = []
        for order in self.orders.open_orders():
            self._close_order(order, "canceled")
            results.append({"id": order.id, "status": 200})
        self._changed()
        return results

    @locked
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
            fill_price = fill_price_for(order, self.price(order.symbol))
        else:
            fill_price = round_price(to_decimal(price, "price"))
        if order.planned_parts:
            order.planned_parts = split_parts(order.remaining - quantity, len(order.planned_parts))
        self._fill(order, quantity, fill_price, silent=silent)
        self._changed()
        return order

    @locked
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

    @locked
    def position_json(self, symbol_or_asset_id: str) -> dict[str, Any]:
        symbol = self._resolve_position_symbol(symbol_or_asset_id)
        position = self.portfolio.positions.get(symbol)
        if position is None:
            raise ApiError(404, CODE_NOT_FOUND, "position does not exist")
        lastday = self.book.lastday_price(symbol, previous_trading_day(et_date(self.now())))
        held = self._held_for_orders(symbol, position.qty)
        return position.to_json(self.price(symbol), lastday, held)

    @locked
    def positions_json(self) -> list[dict[str, Any]]:
        return [self.position_json(symbol) for symbol in sorted(self.portfolio.positions)]

    @locked
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

    @locked
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
            if exposure_increase(self.portfolio.qty(order.symbol), order.side, 1):
                price = order.limit_price or order.stop_price or self.price(order.symbol)
                reserved += order.remaining * price
        return reserved

    @locked
    def buying_power(self) -> Decimal:
        return self.portfolio.buying_power(self.price, self._reserved_for_orders())

    @locked
    def account_json(self) -> dict[str, Any]:
        return self.portfolio.account_json(
            account_id=self.account_id,
            created_at=self.account_created_at,
            initial_cash=self.config.initial_cash,
            price_of=self.price,
            reserved=self._reserved_for_orders(),
        )

    # ------------------------------------------------------------------ request log
    @locked
    def log_request(self, entry: dict[str, Any]) -> None:
        self.request_log.append(entry)
