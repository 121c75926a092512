"""Order indexes: by id, by client_order_id, by time, and the open ones per symbol."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from datetime import datetime

from paperbroker.models import CODE_NOT_FOUND, ApiError, Order


class OrderBook:
    """Every order ever accepted (client_order_ids stay taken after cancel, as at Alpaca).

    The timeline is kept sorted by (submitted_at, seq) as orders arrive, so ``GET /v2/orders``
    bisects to its after/until window instead of sorting 10,000 orders per request.
    """

    def __init__(self) -> None:
        self.by_id: dict[str, Order] = {}
        self._by_coid: dict[str, Order] = {}
        self._keys: list[tuple[datetime, int]] = []
        self._timeline: list[Order] = []
        self._open: dict[str, Order] = {}
        self._open_by_symbol: dict[str, dict[str, Order]] = {}

    def __len__(self) -> int:
        return len(self.by_id)

    def __iter__(self) -> Iterator[Order]:
        """All orders, oldest submitted_at first."""
        return iter(self._timeline)

    def has_client_order_id(self, client_order_id: str) -> bool:
        return client_order_id in self._by_coid

    def add(self, order: Order) -> None:
        self.by_id[order.id] = order
        self._by_coid[order.client_order_id] = order
        key = order.sort_key
        if not self._keys or key > self._keys[-1]:
            self._keys.append(key)
            self._timeline.append(order)
        else:
            position = bisect_left(self._keys, key)
            self._keys.insert(position, key)
            self._timeline.insert(position, order)
        if order.is_open:
            self.mark_open(order)

    def mark_open(self, order: Order) -> None:
        self._open[order.id] = order
        self._open_by_symbol.setdefault(order.symbol, {})[order.id] = order

    def mark_closed(self, order: Order) -> None:
        self._open.pop(order.id, None)
        by_symbol = self._open_by_symbol.get(order.symbol)
        if by_symbol is not None:
            by_symbol.pop(order.id, None)
            if not by_symbol:
                del self._open_by_symbol[order.symbol]

    def open_orders(self) -> list[Order]:
        return list(self._open.values())

    def open_for_symbol(self, symbol: str) -> list[Order]:
        return list(self._open_by_symbol.get(symbol, {}).values())

    @property
    def open_count(self) -> int:
        return len(self._open)

    def get(self, order_id: str) -> Order:
        order = self.by_id.get(order_id)
        if order is None:
            raise ApiError(404, CODE_NOT_FOUND, "order not found")
        return order

    def by_client_order_id(self, client_order_id: str) -> Order:
        order = self._by_coid.get(client_order_id)
        if order is None:
            raise ApiError(404, CODE_NOT_FOUND, "order not found")
        return order

    def find(self, order_id_or_coid: str) -> Order:
        """Control API convenience: an order id or a client_order_id."""
        order = self.by_id.get(order_id_or_coid) or self._by_coid.get(order_id_or_coid)
        if order is None:
            raise ApiError(404, CODE_NOT_FOUND, "order not found")
        return order

    def query(
        self,
        *,
        status: str,
        limit: int,
        after: datetime | None,
        until: datetime | None,
        direction: str,
        symbols: frozenset[str] | None,
        side: str | None,
    ) -> list[Order]:
        """``GET /v2/orders``: bounds on submitted_at are exclusive; ties keep creation order
        (desc is the exact reverse of asc). Scans only the after/until window, stops at limit."""
        low = bisect_right(self._keys, (after, 1 << 62)) if after else 0
        high = bisect_left(self._keys, (until, -1)) if until else len(self._timeline)
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
