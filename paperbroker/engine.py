"""The paper broker's state machine: orders, fills, positions, account, clock and prices.

No Django, no network. Time comes from an injectable clock; every public method takes the
engine lock, so the ASGI loop and in-process callers (tests) can share one engine. Changes are
announced to listeners (the websocket hub) synchronously, in the order they happen.
"""

from __future__ import annotations

import functools
import random
import threading
import uuid
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from math import exp
from typing import Any, TypeVar

from paperbroker import marketdata
from paperbroker.faults import FaultBook
from paperbroker.models import (
    CODE_BAD_REQUEST,
    CODE_FORBIDDEN,
    CODE_NOT_FOUND,
    ApiError,
    Order,
    Position,
    asset_id_for,
    dstr,
    invalid,
    round_price,
    to_decimal,
)
from paperbroker.orderspec import OrderSpec, parse_order_request, validate_symbol
from paperbroker.timeutil import (
    ONE_MICROSECOND,
    et_date,
    in_session,
    iso_et,
    iso_z,
    next_session_edge,
    parse_timestamp,
    previous_trading_day,
    session_bounds,
    trading_days,
    utcnow,
)

FILL_MODELS = ("immediate", "partial", "manual")
CLOCK_MODES = ("open", "closed", "auto")
_FAR = datetime.max.replace(tzinfo=UTC)
_NEVER = datetime.min.replace(tzinfo=UTC)

Listener = Callable[[str, dict[str, Any]], None]
F = TypeVar("F", bound=Callable[..., Any])


def _locked(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: Engine, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class EngineConfig:
    """Behaviour switches; settable at reset and at runtime (``POST /_paper/config``)."""

    fill_model: str = "immediate"
    partial_fills: int = 3
    random_walk: bool = True
    tick_seconds: float = 1.0
    initial_cash: Decimal = Decimal("100000")
    seed: int = 0
    volatility: float = 0.001

    def updated(self, changes: Mapping[str, Any]) -> EngineConfig:
        """A copy with ``changes`` applied and validated (422 on bad values)."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise invalid(f"unknown config keys: {', '.join(sorted(unknown))}")
        values = asdict(self) | dict(changes)
        try:
            config = EngineConfig(
                fill_model=str(values["fill_model"]),
                partial_fills=int(values["partial_fills"]),
                random_walk=_as_bool(values["random_walk"], "random_walk"),
                tick_seconds=float(values["tick_seconds"]),
                initial_cash=to_decimal(values["initial_cash"], "initial_cash"),
                seed=int(values["seed"]),
                volatility=float(values["volatility"]),
            )
        except (TypeError, ValueError):
            raise invalid("invalid config value") from None
        if config.fill_model not in FILL_MODELS:
            raise invalid(f"fill_model must be one of {', '.join(FILL_MODELS)}")
        if config.partial_fills < 1 or config.tick_seconds < 0 or config.volatility < 0:
            raise invalid("partial_fills must be >= 1, tick_seconds and volatility >= 0")
        return config

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"initial_cash": dstr(self.initial_cash)}


@dataclass
class ClockState:
    mode: str = "open"  # open | closed | auto (regular NYSE session hours)
    next_open: datetime | None = None
    next_close: datetime | None = None
    frozen_now: datetime | None = None


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise invalid(f"{name} must be true or false")


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
        self.account_created_at = self._wall()
        self.faults = FaultBook()
        self.request_log: deque[dict[str, Any]] = deque(maxlen=100_000)
        self.version = 0
        self._clear(self._base_config)

    # ------------------------------------------------------------------ lifecycle
    def _clear(self, config: EngineConfig) -> None:
        self.config = config
        self.clock = ClockState(mode=self._base_clock_mode)
        self.cash = config.initial_cash
        self.orders: dict[str, Order] = {}
        self._by_coid: dict[str, Order] = {}
        self._timeline_keys: list[tuple[datetime, int]] = []
        self._timeline: list[Order] = []
        self._open: dict[str, Order] = {}
        self._open_by_symbol: dict[str, dict[str, Order]] = {}
        self.positions: dict[str, Position] = {}
        self.prices: dict[str, Decimal] = {}
        self.price_times: dict[str, datetime] = {}
        self.adv: dict[str, int] = {}
        self._walkers: dict[str, random.Random] = {}
        self._seq = 0
        self.tick_no = 0
        self._last_stamp = _NEVER
        self.faults.clear()
        self.request_log.clear()
        self._was_open = self.is_open()

    @_locked
    def reset(self, overrides: Mapping[str, Any] | None = None) -> None:
        """Back to the start-up configuration (plus ``overrides``) with an empty account."""
        config = self._base_config.updated(overrides or {})
        self._clear(config)
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
        return self.clock.frozen_now or self._wall()

    def _stamp(self, order: Order | None = None) -> datetime:
        """A timestamp strictly later than every earlier one (and than ``order.updated_at``):
        TradeOps resolves conflicting updates by ``updated_at``, so it must never repeat."""
        moment = self.now()
        if moment <= self._last_stamp:
            moment = self._last_stamp + ONE_MICROSECOND
        self._last_stamp = moment
        if order is not None and moment <= order.updated_at:
            moment = order.updated_at + ONE_MICROSECOND
        return moment

    def is_open(self) -> bool:
        if self.clock.mode == "auto":
            return in_session(self.now())
        return self.clock.mode == "open"

    @_locked
    def set_clock(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Open/close the market, override next_open/next_close, freeze or thaw time."""
        if "now" in changes:
            raw = changes["now"]
            self.clock.frozen_now = _timestamp(raw, "now") if raw is not None else None
        if changes.get("auto"):
            self.clock.mode = "auto"
        if "is_open" in changes:
            self.clock.mode = "open" if _as_bool(changes["is_open"], "is_open") else "closed"
        for name in ("next_open", "next_close"):
            if name in changes:
                raw = changes[name]
                setattr(self.clock, name, _timestamp(raw, name) if raw is not None else None)
        self._sync_market_state()
        self._changed()
        return self.clock_json()

    @_locked
    def clock_json(self) -> dict[str, Any]:
        now = self.now()
        next_open = self.clock.next_open or next_session_edge(now, edge="open")
        next_close = self.clock.next_close or next_session_edge(now, edge="close")
        return {
            "timestamp": iso_et(now),
            "is_open": self.is_open(),
            "next_open": iso_et(next_open),
            "next_close": iso_et(next_close),
        }

    def calendar(self, start: date, end: date) -> list[dict[str, Any]]:
        """Weekdays with the regular session; no exchange holidays."""
        days = trading_days(start, end)
        result = []
        for index, day in enumerate(days):
            settle = days[index + 1] if index + 1 < len(days) else day + timedelta(days=1)
            result.append(
                {
                    "date": day.isoformat(),
                    "open": "09:30",
                    "close": "16:00",
                    "session_open": "0400",
                    "session_close": "2000",
                    "settlement_date": settle.isoformat(),
                }
            )
        return result

    def _sync_market_state(self) -> None:
        """Act on open/close transitions: release waiting orders at the open, expire day
        orders at the close."""
        is_open = self.is_open()
        if is_open == self._was_open:
            return
        self._was_open = is_open
        if is_open:
            for order in list(self._open.values()):
                if order.status == "accepted":
                    order.status = "new"
                    order.updated_at = self._stamp(order)
                    self._emit_trade_update("new", order)
            self._execute_all()
        else:
            for order in list(self._open.values()):
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
            current = self.prices.get(symbol)
            if current is None:
                close = marketdata.daily_close(
                    symbol, self._last_close_day(), marketdata.reference_price(symbol)
                )
                current = round_price(Decimal(str(close)))
                self.prices[symbol] = current
                self.price_times[symbol] = self.now()
            return current

    def lastday_price(self, symbol: str) -> Decimal:
        close = marketdata.daily_close(
            symbol, previous_trading_day(et_date(self.now())), marketdata.reference_price(symbol)
        )
        return Decimal(str(close))

    def symbol_adv(self, symbol: str) -> int:
        return self.adv.get(symbol) or marketdata.default_adv(symbol)

    @_locked
    def set_prices(self, prices: Mapping[str, Any]) -> dict[str, str]:
        """Move prices (as a feed would); resting limit/stop orders may fill."""
        parsed = {}
        for raw_symbol, raw_price in prices.items():
            symbol = validate_symbol(raw_symbol)
            value = to_decimal(raw_price, f"price for {symbol}")
            if value <= 0:
                raise invalid(f"price for {symbol} must be > 0")
            parsed[symbol] = round_price(value)
        for symbol, value in parsed.items():
            self._move_price(symbol, value)
        for symbol in parsed:
            for order in list(self._open_by_symbol.get(symbol, {}).values()):
                self._execute(order)
        self._changed()
        return {symbol: dstr(self.prices[symbol]) or "0" for symbol in parsed}

    def _move_price(self, symbol: str, value: Decimal) -> None:
        self.prices[symbol] = value
        moment = self._stamp()
        self.price_times[symbol] = moment
        self._emit("quote", {"symbol": symbol})

    @_locked
    def set_symbol(self, symbol: str, profile: Mapping[str, Any]) -> dict[str, Any]:
        """Per-symbol market profile: ``adv`` (average daily volume) and/or ``price``."""
        symbol = validate_symbol(symbol)
        unknown = set(profile) - {"adv", "price"}
        if unknown:
            raise invalid(f"unknown symbol keys: {', '.join(sorted(unknown))}")
        if "adv" in profile:
            adv = to_decimal(profile["adv"], "adv")
            if adv <= 0 or adv != adv.to_integral_value():
                raise invalid("adv must be a positive whole number of shares")
            self.adv[symbol] = int(adv)
        if "price" in profile:
            self.set_prices({symbol: profile["price"]})
        self._changed()
        return self.symbol_json(symbol)

    def symbol_json(self, symbol: str) -> dict[str, Any]:
        return {
            "adv": self.symbol_adv(symbol),
            "price": dstr(self.price(symbol)),
            "reference_price": dstr(marketdata.reference_price(symbol)),
        }

    @_locked
    def tick(self, count: int = 1) -> int:
        """Advance the simulation: random-walk step, clock check, one partial fill each."""
        for _ in range(count):
            self.tick_no += 1
            if self.config.random_walk:
                for symbol in sorted(self.prices):
                    self._walk(symbol)
            self._sync_market_state()
            self._execute_all()
        if count:
            self._changed()
        return self.tick_no

    def _walk(self, symbol: str) -> None:
        walker = self._walkers.get(symbol)
        if walker is None:
            walker = random.Random(f"{self.config.seed}:{symbol}:{self.tick_no}")
            self._walkers[symbol] = walker
        step = exp(walker.gauss(0.0, self.config.volatility))
        moved = round_price(self.prices[symbol] * Decimal(str(step)))
        if moved != self.prices[symbol]:
            self._move_price(symbol, moved)

    def quote(self, symbol: str) -> dict[str, Any]:
        """Latest quote around the current price, in the REST wire shape (no ``T``/``S``)."""
        with self._lock:
            price = self.price(symbol)
            moment = self.price_times[symbol]
        spread = marketdata.half_spread(price)
        bid_size, ask_size = marketdata.quote_sizes(symbol, moment)
        return {
            "t": moment,
            "ax": "V",
            "ap": float(price + spread),
            "as": ask_size,
            "bx": "V",
            "bp": float(max(price - spread, spread)),
            "bs": bid_size,
            "c": ["R"],
            "z": "C",
        }

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
        if spec.client_order_id in self._by_coid:
            raise ApiError(422, CODE_BAD_REQUEST, "client_order_id must be unique")
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
                if spec.client_order_id in self._by_coid or spec.client_order_id in seen:
                    raise ApiError(422, CODE_BAD_REQUEST, "client_order_id must be unique")
                self._check_stop_price(spec)
            except ApiError as exc:
                raise ApiError(exc.status, exc.code, f"orders[{index}]: {exc.message}") from None
            seen.add(spec.client_order_id)
            specs.append(spec)
        orders = [self._create(spec, "control") for spec in specs]
        self._changed()
        return orders

    def _create(self, spec: OrderSpec, origin: str) -> Order:
        now = self._stamp()
        submitted = spec.submitted_at or now
        position = self.positions.get(spec.symbol)
        held = position.qty if position else 0
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
            updated_at=max(now, submitted),
            submitted_at=submitted,
            seq=self._seq,
            position_intent=_position_intent(spec.side, held),
            origin=origin,
        )
        self._index(order)
        self._emit_trade_update(order.status, order)
        self._execute(order)
        return order

    def _index(self, order: Order) -> None:
        self.orders[order.id] = order
        self._by_coid[order.client_order_id] = order
        key = order.sort_key
        if not self._timeline_keys or key > self._timeline_keys[-1]:
            self._timeline_keys.append(key)
            self._timeline.append(order)
        else:
            position = bisect_left(self._timeline_keys, key)
            self._timeline_keys.insert(position, key)
            self._timeline.insert(position, order)
        if order.is_open:
            self._open[order.id] = order
            self._open_by_symbol.setdefault(order.symbol, {})[order.id] = order

    def _unindex_open(self, order: Order) -> None:
        self._open.pop(order.id, None)
        by_symbol = self._open_by_symbol.get(order.symbol)
        if by_symbol is not None:
            by_symbol.pop(order.id, None)
            if not by_symbol:
                del self._open_by_symbol[order.symbol]

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
        position = self.positions.get(spec.symbol)
        increase = _exposure_increase(position.qty if position else 0, spec.side, spec.qty)
        if not increase:
            return
        needed = increase * (spec.limit_price or spec.stop_price or self.price(spec.symbol))
        if needed > self.buying_power():
            raise ApiError(403, CODE_FORBIDDEN, "insufficient buying power")

    # ------------------------------------------------------------------ orders: execution
    def _execute_all(self) -> None:
        for order in list(self._open.values()):
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
            self._unindex_open(order)
        else:
            order.status = "partially_filled"
        signed = quantity if order.side == "buy" else -quantity
        position = self.positions.get(order.symbol) or Position(order.symbol, 0, Decimal(0))
        position.apply_fill(signed, price)
        if position.qty:
            self.positions[order.symbol] = position
        else:
            self.positions.pop(order.symbol, None)
        self.cash -= price * signed
        if silent:
            return
        event = "fill" if order.status == "filled" else "partial_fill"
        self._emit_trade_update(
            event,
            order,
            execution_id=str(uuid.uuid4()),
            price=dstr(price),
            qty=str(quantity),
            position_qty=str(position.qty),
        )
        self._emit("trade", {"symbol": order.symbol, "price": price, "size": quantity})

    def _close_order(self, order: Order, status: str, *, silent: bool = False) -> None:
        """Move an open order to canceled/expired/rejected and tell the stream."""
        moment = self._stamp(order)
        order.status = status
        order.updated_at = moment
        order.planned_parts = []
        setattr(order, _TERMINAL_STAMP[status], moment)
        self._unindex_open(order)
        if not silent:
            self._emit_trade_update(status, order)

    def _emit_trade_update(self, event: str, order: Order, **extra: Any) -> None:
        if not self._listeners:
            return  # building the payload is the expensive part of bulk placement
        data = {"event": event, "order": order.to_json(), "timestamp": iso_z(order.updated_at)}
        self._emit("trade_update", data | extra)

    # ------------------------------------------------------------------ orders: queries
    def _find(self, order_id_or_coid: str) -> Order:
        order = self.orders.get(order_id_or_coid) or self._by_coid.get(order_id_or_coid)
        if order is None:
            raise ApiError(404, CODE_NOT_FOUND, "order not found")
        return order

    @_locked
    def get_order(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise ApiError(404, CODE_NOT_FOUND, "order not found")
        return order

    @_locked
    def get_order_by_client_id(self, client_order_id: str) -> Order:
        order = self._by_coid.get(client_order_id)
        if order is None:
            raise ApiError(404, CODE_NOT_FOUND, "order not found")
        return order

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
        """``GET /v2/orders``: bounds on submitted_at are exclusive; ties keep creation order
        (desc is the exact reverse of asc). Bisects the timeline, then scans only the window."""
        low = bisect_right(self._timeline_keys, (after, 1 << 62)) if after else 0
        high = bisect_left(self._timeline_keys, (until, -1)) if until else len(self._timeline)
        indexes = range(low, high) if direction == "asc" else range(high - 1, low - 1, -1)
        result: list[Order] = []
        for index in indexes:
            order = self._timeline[index]
            if status == "open" and not order.is_open:
                continue
            if status == "closed" and order.is_open:
                continue
            if symbols and order.symbol not in symbols:
                continue
            if side and order.side != side:
                continue
            result.append(order)
            if len(result) >= limit:
                break
        return result

    # ------------------------------------------------------------------ orders: changes
    @_locked
    def cancel_order(
        self, order_id: str, *, silent: bool = False, by_client: bool = False
    ) -> Order:
        order = self._find(order_id) if by_client else self.get_order(order_id)
        if not order.is_open:
            raise invalid("order is not cancelable")
        self._close_order(order, "canceled", silent=silent)
        self._changed()
        return order

    @_locked
    def cancel_all_orders(self) -> list[dict[str, Any]]:
        results = []
        for order in list(self._open.values()):
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
        order = self._find(order_ref)
        if not order.is_open:
            raise invalid(f"order is {order.status}, not fillable")
        quantity = order.remaining if qty is None else _whole(to_decimal(qty, "qty"), "qty")
        if not 0 < quantity <= order.remaining:
            raise invalid(f"qty must be between 1 and {order.remaining}")
        fill_price = (
            _fill_price(order, self.price(order.symbol))
            if price is None
            else round_price(to_decimal(price, "price"))
        )
        if fill_price <= 0:
            raise invalid("price must be > 0")
        if order.planned_parts:
            order.planned_parts = _split(order.remaining - quantity, len(order.planned_parts))
        self._fill(order, quantity, fill_price, silent=silent)
        self._changed()
        return order

    @_locked
    def reject_order(self, order_ref: str, *, silent: bool = False) -> Order:
        order = self._find(order_ref)
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
            for order in self._open_by_symbol.get(symbol, {}).values()
            if order.side == closing_side
        )

    def _resolve_position_symbol(self, symbol_or_asset_id: str) -> str:
        for symbol in self.positions:
            if asset_id_for(symbol) == symbol_or_asset_id:
                return symbol
        return symbol_or_asset_id.upper()

    @_locked
    def position_json(self, symbol_or_asset_id: str) -> dict[str, Any]:
        symbol = self._resolve_position_symbol(symbol_or_asset_id)
        position = self.positions.get(symbol)
        if position is None:
            raise ApiError(404, CODE_NOT_FOUND, "position does not exist")
        return position.to_json(
            self.price(symbol),
            self.lastday_price(symbol),
            self._held_for_orders(symbol, position.qty),
        )

    @_locked
    def positions_json(self) -> list[dict[str, Any]]:
        return [self.position_json(symbol) for symbol in sorted(self.positions)]

    @_locked
    def close_position(
        self, symbol_or_asset_id: str, *, qty: str | None = None, percentage: str | None = None
    ) -> Order:
        """Liquidate all or part of a position with a market order (``DELETE /v2/positions``)."""
        symbol = self._resolve_position_symbol(symbol_or_asset_id)
        position = self.positions.get(symbol)
        if position is None:
            raise ApiError(404, CODE_NOT_FOUND, "position does not exist")
        if qty is not None and percentage is not None:
            raise invalid("only one of qty or percentage may be given")
        size = abs(position.qty)
        if qty is not None:
            requested = _whole(to_decimal(qty, "qty"), "qty")
        elif percentage is not None:
            share = to_decimal(percentage, "percentage")
            if not 0 < share <= 100:
                raise invalid("percentage must be in (0, 100]")
            requested = int(size * share / 100)
        else:
            requested = size
        if requested <= 0:
            raise invalid("qty must be > 0")
        available = size - self._held_for_orders(symbol, position.qty)
        if requested > available:
            raise ApiError(
                403,
                CODE_FORBIDDEN,
                f"insufficient qty available for order (requested: {requested}, "
                f"available: {available})",
                available=str(available),
                existing_qty=str(size),
                held_for_orders=str(size - available),
                symbol=symbol,
            )
        side = "sell" if position.qty > 0 else "buy"
        payload = {
            "symbol": symbol,
            "qty": requested,
            "side": side,
            "type": "market",
            "time_in_force": "day",
        }
        return self.submit_order(payload, check_buying_power=False)

    @_locked
    def close_all_positions(self, *, cancel_orders: bool = False) -> list[dict[str, Any]]:
        if cancel_orders:
            self.cancel_all_orders()
        results = []
        for symbol in sorted(self.positions):
            try:
                order = self.close_position(symbol)
                results.append({"symbol": symbol, "status": 200, "body": order.to_json()})
            except ApiError as exc:
                results.append({"symbol": symbol, "status": exc.status, "body": exc.body()})
        return results

    def _market_values(self) -> tuple[Decimal, Decimal]:
        long_value = short_value = Decimal(0)
        for symbol, position in self.positions.items():
            value = self.price(symbol) * position.qty
            if position.qty > 0:
                long_value += value
            else:
                short_value += value
        return long_value, short_value

    def _reserved_for_orders(self) -> Decimal:
        """Buying power held by open orders that would add exposure."""
        reserved = Decimal(0)
        for order in self._open.values():
            position = self.positions.get(order.symbol)
            increase = _exposure_increase(position.qty if position else 0, order.side, 1)
            if increase:
                price = order.limit_price or order.stop_price or self.price(order.symbol)
                reserved += order.remaining * price
        return reserved

    @_locked
    def buying_power(self) -> Decimal:
        """Cash-like, unlevered: shorts tie up twice their value (proceeds plus margin)."""
        _, short_value = self._market_values()
        return max(Decimal(0), self.cash + 2 * short_value - self._reserved_for_orders())

    @_locked
    def account_json(self) -> dict[str, Any]:
        long_value, short_value = self._market_values()
        equity = self.cash + long_value + short_value
        buying_power = dstr(self.buying_power())
        gross = long_value - short_value
        return {
            "id": self.account_id,
            "account_number": "PA0PAPERBRKR",
            "status": "ACTIVE",
            "crypto_status": "INACTIVE",
            "currency": "USD",
            "buying_power": buying_power,
            "regt_buying_power": buying_power,
            "daytrading_buying_power": "0",
            "effective_buying_power": buying_power,
            "non_marginable_buying_power": buying_power,
            "options_buying_power": buying_power,
            "bod_dtbp": "0",
            "cash": dstr(self.cash),
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "pending_transfer_out": "0",
            "portfolio_value": dstr(equity),
            "pattern_day_trader": False,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "created_at": iso_z(self.account_created_at),
            "trade_suspended_by_user": False,
            "multiplier": "1",
            "shorting_enabled": True,
            "equity": dstr(equity),
            "last_equity": dstr(self.config.initial_cash),
            "long_market_value": dstr(long_value),
            "short_market_value": dstr(short_value),
            "position_market_value": dstr(gross),
            "initial_margin": dstr(gross),
            "maintenance_margin": dstr(gross * Decimal("0.3")),
            "last_maintenance_margin": "0",
            "sma": "0",
            "daytrade_count": 0,
            "options_approved_level": 0,
            "options_trading_level": 0,
        }

    # ------------------------------------------------------------------ state
    @_locked
    def log_request(self, entry: dict[str, Any]) -> None:
        self.request_log.append(entry)

    @_locked
    def state_json(self, *, include_orders: bool = True) -> dict[str, Any]:
        """Everything an operator or a test wants to see (``GET /_paper/state``)."""
        orders = [order.to_json() | {"origin": order.origin} for order in self._timeline]
        return {
            "orders": orders if include_orders else None,
            "order_count": len(self.orders),
            "open_order_count": len(self._open),
            "positions": self.positions_json(),
            "account": self.account_json(),
            "clock": self.clock_json() | {"mode": self.clock.mode, "frozen": self.frozen()},
            "prices": {symbol: dstr(price) for symbol, price in sorted(self.prices.items())},
            "symbols": {symbol: self.symbol_json(symbol) for symbol in sorted(self.adv)},
            "config": self.config.to_json(),
            "faults": self.faults.to_json(),
            "tick": self.tick_no,
        }

    def frozen(self) -> str | None:
        return iso_z(self.clock.frozen_now)

    @_locked
    def snapshot(self) -> dict[str, Any]:
        """What the state file holds (requests log and faults are deliberately transient)."""
        return {
            "format": 1,
            "config": self.config.to_json(),
            "cash": str(self.cash),
            "clock": {
                "mode": self.clock.mode,
                "next_open": iso_z(self.clock.next_open),
                "next_close": iso_z(self.clock.next_close),
                "frozen_now": iso_z(self.clock.frozen_now),
            },
            "prices": {symbol: str(price) for symbol, price in self.prices.items()},
            "adv": dict(self.adv),
            "orders": [order.to_state() for order in self._timeline],
            "positions": [position.to_state() for position in self.positions.values()],
            "seq": self._seq,
            "tick_no": self.tick_no,
            "last_stamp": iso_z(self._last_stamp) if self._last_stamp > _NEVER else None,
        }

    @_locked
    def restore(self, data: Mapping[str, Any]) -> None:
        if data.get("format") != 1:
            raise ValueError("unsupported paper broker state format")
        self._clear(EngineConfig().updated(data["config"]))
        self.cash = Decimal(data["cash"])
        clock = data["clock"]
        self.clock = ClockState(
            mode=clock["mode"],
            **{
                name: parse_timestamp(clock[name]) if clock.get(name) else None
                for name in ("next_open", "next_close", "frozen_now")
            },
        )
        self.prices = {symbol: Decimal(price) for symbol, price in data["prices"].items()}
        moment = self.now()
        self.price_times = dict.fromkeys(self.prices, moment)
        self.adv = {symbol: int(adv) for symbol, adv in data["adv"].items()}
        for raw in data["orders"]:
            self._index(Order.from_state(raw))
        for raw in data["positions"]:
            position = Position.from_state(raw)
            self.positions[position.symbol] = position
        self._seq = int(data["seq"])
        self.tick_no = int(data["tick_no"])
        if data.get("last_stamp"):
            self._last_stamp = parse_timestamp(data["last_stamp"])
        self._was_open = self.is_open()
        self._changed()

    @_locked
    def apply_startup_options(self, config: Mapping[str, Any], clock_mode: str | None) -> None:
        """Options given on the command line win over a restored state file, and become the
        baseline that ``reset`` returns to."""
        self._base_config = self._base_config.updated(config)
        self.config = self.config.updated(config)
        if clock_mode is not None:
            self._base_clock_mode = clock_mode
            self.clock = replace(self.clock, mode=clock_mode)
            self._sync_market_state()


_TERMINAL_STAMP = {"canceled": "canceled_at", "expired": "expired_at", "rejected": "failed_at"}


def _timestamp(raw: Any, name: str) -> datetime:
    try:
        return parse_timestamp(str(raw))
    except ValueError:
        raise invalid(f"invalid format for {name}") from None


def _whole(value: Decimal, name: str) -> int:
    if value != value.to_integral_value():
        raise invalid(f"{name} must be a whole number of shares")
    return int(value)


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
