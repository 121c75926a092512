"""``PaperControl``: a small client of the paper broker's ``/_paper`` control API.

Tests, the demo and operator drills use it to steer the broker (prices, clock, fills behind
the client's back, injected faults) and to inspect it (state, request log). It talks plain
HTTP with ``requests``; it does not use alpaca-py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import requests

PriceLike = str | int | float | Decimal
_UNSET: Any = object()


class PaperControlError(Exception):
    """The control API refused a call; ``status`` and ``body`` say why."""

    def __init__(self, status: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"paper broker control API answered {status}: {message}")
        self.status = status
        self.body = body


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class PaperControl:
    """Client for ``{base_url}/_paper/...``; ``base_url`` is ``PaperBrokerServer.url``."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        response = self.session.request(
            method,
            f"{self.base_url}/_paper/{path}",
            json=_jsonable(body) if body is not None else None,
            params=params,
            timeout=self.timeout,
        )
        payload = response.json() if response.content else None
        if response.status_code >= 400:
            raise PaperControlError(response.status_code, payload)
        return payload

    # ------------------------------------------------------------------ configuration
    def reset(self, **config: Any) -> dict[str, Any]:
        """Empty account and order book, no faults, empty request log, start-up config plus
        ``config`` (fill_model, partial_fills, random_walk, tick_seconds, initial_cash, seed,
        volatility). Requests held by a ``timeout`` fault end at once."""
        return self._call("POST", "reset", config)

    def config(self) -> dict[str, Any]:
        return self._call("GET", "config")

    def set_config(self, **changes: Any) -> dict[str, Any]:
        """Change behaviour at runtime, e.g. ``set_config(fill_model="manual")``."""
        return self._call("POST", "config", changes)

    def clock(self) -> dict[str, Any]:
        return self._call("GET", "clock")

    def set_clock(
        self,
        is_open: bool | None = None,
        *,
        auto: bool = False,
        next_open: datetime | str | None = _UNSET,
        next_close: datetime | str | None = _UNSET,
        now: datetime | str | None = _UNSET,
    ) -> dict[str, Any]:
        """Open or close the market (closing expires day orders), or follow real session hours
        with ``auto=True``. ``now`` freezes broker time (``None`` thaws it);
        ``next_open``/``next_close`` override what ``/v2/clock`` reports (``None`` = computed).
        """
        body: dict[str, Any] = {}
        if is_open is not None:
            body["is_open"] = is_open
        if auto:
            body["auto"] = True
        for name, value in (("next_open", next_open), ("next_close", next_close), ("now", now)):
            if value is not _UNSET:
                body[name] = value
        return self._call("POST", "clock", body)

    # ------------------------------------------------------------------ market
    def prices(self) -> dict[str, str]:
        return self._call("GET", "prices")

    def set_prices(self, prices: Mapping[str, PriceLike]) -> dict[str, str]:
        """Move prices; resting limit/stop orders that become marketable fill."""
        return self._call("POST", "prices", dict(prices))

    def set_price(self, symbol: str, price: PriceLike) -> str:
        return self.set_prices({symbol: price})[symbol.upper()]

    def symbols(self) -> dict[str, dict[str, Any]]:
        return self._call("GET", "symbols")

    def set_symbol(
        self,
        symbol: str,
        *,
        adv: int | None = None,
        price: PriceLike | None = None,
        listed: date | str | None = _UNSET,
    ) -> dict[str, Any]:
        """Set a symbol's average daily volume (daily bar volumes follow it), price and/or
        listing day (no bars before it; ``None`` restores the full history)."""
        profile: dict[str, Any] = {}
        if adv is not None:
            profile["adv"] = adv
        if price is not None:
            profile["price"] = price
        if listed is not _UNSET:
            profile["listed"] = listed.isoformat() if isinstance(listed, date) else listed
        return self._call("POST", "symbols", {symbol: profile})[symbol.upper()]

    def assets(self) -> dict[str, dict[str, Any]]:
        """The broker's asset universe, symbol -> Alpaca asset JSON."""
        return self._call("GET", "assets")

    def set_asset(self, symbol: str, **changes: Any) -> dict[str, Any]:
        """Add an asset or change it: ``status`` ("active"/"inactive"), ``tradable`` (False =
        halted), ``shortable``, ``easy_to_borrow``, ``marginable``, ``fractionable``,
        ``exchange``, ``name``. Returns its Alpaca JSON."""
        return self._call("POST", "assets", {symbol: changes})[symbol.upper()]

    def tick(self, count: int = 1) -> int:
        """Advance the simulation ``count`` ticks now (random walk, partial fills, clock)."""
        return self._call("POST", "tick", {"count": count})["tick"]

    # ------------------------------------------------------------------ orders
    def place_order(
        self,
        symbol: str,
        qty: int,
        side: str,
        type: str = "market",
        time_in_force: str = "day",
        **fields: Any,
    ) -> dict[str, Any]:
        """Create an order directly at the broker (an orphan TradeOps never sent). ``fields``:
        limit_price, stop_price, client_order_id, submitted_at, extended_hours."""
        body = {
            "symbol": symbol,
            "qty": qty,
            "side": side,
            "type": type,
            "time_in_force": time_in_force,
            **fields,
        }
        return self._call("POST", "orders", body)

    def place_orders(self, orders: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Bulk form of ``place_order`` (same fields per order); all-or-nothing validation."""
        return self._call("POST", "orders", {"orders": list(orders)})["orders"]

    def fill(
        self,
        order_id: str,
        qty: int | None = None,
        price: PriceLike | None = None,
        *,
        silent: bool = False,
    ) -> dict[str, Any]:
        """Fill an open order (by id or client_order_id), default all of it at the current
        price. ``silent=True`` sends no stream event: drift only reconciliation can find."""
        body: dict[str, Any] = {"silent": silent}
        if qty is not None:
            body["qty"] = qty
        if price is not None:
            body["price"] = price
        return self._call("POST", f"orders/{order_id}/fill", body)

    def cancel(self, order_id: str, *, silent: bool = False) -> dict[str, Any]:
        """Cancel at the broker (by id or client_order_id); ``silent`` = no stream event."""
        return self._call("POST", f"orders/{order_id}/cancel", {"silent": silent})

    def reject(self, order_id: str, *, silent: bool = False) -> dict[str, Any]:
        """Reject an open order after acceptance (``rejected`` event unless silent)."""
        return self._call("POST", f"orders/{order_id}/reject", {"silent": silent})

    # ------------------------------------------------------------------ faults
    def add_fault(
        self,
        method: str,
        path: str,
        mode: str,
        count: int = 1,
        delay: float | None = None,
        probability: float | None = None,
    ) -> dict[str, Any]:
        """Make the next ``count`` (-1 = all) ``/v2`` requests matching ``method`` (or ``*``)
        and ``path`` (exact, or prefix with a trailing ``*``) fail in ``mode``: error500,
        timeout, drop_response_after_commit, delay_after_commit, rate_limit or slow.
        ``delay``: seconds a timeout holds the request or delay_after_commit holds the response
        of the processed request (default 30) / seconds until X-RateLimit-Reset (default 60) /
        seconds a slow request waits before it is processed and answered normally (default 2).
        ``probability`` (0-1, default 1): the rule takes each matching request only with that
        chance (seeded by the reset's ``seed``), e.g. ``count=-1, probability=0.02``."""
        body: dict[str, Any] = {"method": method, "path": path, "mode": mode, "count": count}
        if delay is not None:
            body["delay"] = delay
        if probability is not None:
            body["probability"] = probability
        return self._call("POST", "faults", body)["added"][0]

    def faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "faults")["faults"]

    def clear_faults(self) -> None:
        """Remove every fault and end requests held by ``timeout`` faults."""
        self._call("DELETE", "faults")

    # ------------------------------------------------------------------ inspection
    def state(self, *, include_orders: bool = True) -> dict[str, Any]:
        """Orders (with ``origin``), positions, account, clock, prices, config, faults, streams."""
        params = None if include_orders else {"orders": "false"}
        return self._call("GET", "state", params=params)

    def requests(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        client_order_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """The ``/v2`` request log (method, path, query, status, client_order_id, timestamp,
        fault), oldest first, optionally filtered."""
        params = {
            key: value
            for key, value in (
                ("method", method),
                ("path", path),
                ("client_order_id", client_order_id),
            )
            if value is not None
        }
        return self._call("GET", "requests", params=params)["requests"]

    def clear_requests(self) -> None:
        self._call("DELETE", "requests")

    def submit_count(self, client_order_id: str) -> int:
        """How many times ``POST /v2/orders`` reached the broker with this client_order_id."""
        return len(self.requests(method="POST", path="/v2/orders", client_order_id=client_order_id))

    def streams(self) -> dict[str, Any]:
        """Connected websocket clients and their subscriptions."""
        return self._call("GET", "streams")

    def inject_data(self, messages: list[Any]) -> int:
        """Push raw market data messages (malformed ones too) to every data stream client;
        ISO ``t`` strings become msgpack timestamps. Returns how many clients got them."""
        return self._call("POST", "streams/inject", {"messages": messages})["clients"]

    def disconnect_streams(self) -> int:
        """Close every websocket connection (clients are expected to reconnect)."""
        return self._call("POST", "streams/disconnect")["closed"]
