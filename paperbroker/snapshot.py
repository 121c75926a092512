"""The paper broker's state as a whole: what an operator or a test sees (``GET /_paper/state``),
what the state file holds (``snapshot``), how a saved state comes back (``restore``), and the
command line's options applied over it.

``EngineSnapshot`` is part of ``paperbroker.engine.Engine`` (one state, one lock).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from paperbroker.config import EngineConfig
from paperbroker.locking import locked
from paperbroker.models import Order
from paperbroker.timeutil import NEVER, iso_z, parse_timestamp


class EngineSnapshot:
    """The whole-state methods of ``Engine`` (see the module docstring)."""

    @locked
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

    @locked
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
            "last_stamp": iso_z(self._last_stamp) if self._last_stamp > NEVER else None,
            "was_open": self._was_open,
        }

    @locked
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

    @locked
    def apply_startup_options(self, config: Mapping[str, Any], clock_mode: str | None) -> None:
        """Options given on the command line win over a restored state file, and become the
        baseline that ``reset`` returns to."""
        self._base_config = self._base_config.updated(config)
        self.config = self.config.updated(config)
        if clock_mode is not None:
            self._base_clock_mode = clock_mode
            self.clock.mode = clock_mode
            self._sync_market_state()
