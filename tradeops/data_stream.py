"""The broker seam's market-data websocket: alpaca-py's ``StockDataStream`` (msgpack quotes).

Part of the one seam to the broker (with ``tradeops.broker``): nothing else imports alpaca-py.
What it adds (facts: ../shared/reference/alpaca-py.md §6.4):
- Quotes handed out as the seam's own ``QuoteReport`` (Decimal prices, int sizes, aware UTC
  broker timestamps). alpaca-py runs in ``raw_data`` mode so that the seam, not pydantic,
  reads each message: a malformed one is reported through ``on_malformed`` and skipped, and
  the rest of its frame is still delivered.
- ``on_connect`` / ``on_disconnect`` hooks (alpaca-py reconnects by itself with back-off
  1-30 s and re-subscribes; the callers need to know when the feed is down).
- ``set_symbols``: the subscription follows a changing universe from another thread.
- A ``stop()`` that is safe from any thread at any time (alpaca-py's discards a stop that
  arrives before its loop runs, and deadlocks when called from the loop's own thread).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from alpaca.data.enums import DataFeed
from alpaca.data.live.stock import StockDataStream
from django.conf import settings

from tradeops.broker_types import PRICE, QuoteReport, as_aware

logger = logging.getLogger(__name__)


def quote_report_from_stream(message: dict[str, Any]) -> QuoteReport:
    """One raw ``{"T": "q", ...}`` message as a QuoteReport; ValueError when malformed."""
    if not isinstance(message, dict):
        raise ValueError("quote message is not a map")
    try:
        symbol, moment = message["S"], message["t"]
        bid, ask = _price(message["bp"], "bp"), _price(message["ap"], "ap")
        bid_size, ask_size = _size(message["bs"], "bs"), _size(message["as"], "as")
    except KeyError as exc:
        raise ValueError(f"quote message lacks {exc.args[0]!r}") from None
    if not isinstance(symbol, str):
        raise ValueError("quote symbol is not a string")
    if hasattr(moment, "to_datetime"):  # msgpack Timestamp, as Alpaca sends it
        moment = moment.to_datetime()
    if not isinstance(moment, datetime):
        raise ValueError("quote timestamp is not a time")
    return QuoteReport(
        symbol=symbol,
        bid_price=bid,
        ask_price=ask,
        bid_size=bid_size,
        ask_size=ask_size,
        timestamp=as_aware(moment),
    )


def _price(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} is not a number")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0")
    return Decimal(str(value)).quantize(PRICE)


def _size(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} is not a number")
    if value < 0 or value != int(value):
        raise ValueError(f"{name} must be a whole number >= 0")
    return int(value)


class _StockDataStream(StockDataStream):
    """alpaca-py's stream with hooks after every successful (re)connect and every close."""

    def __init__(
        self, *args: Any, on_connect: Callable[[], None], on_close: Callable[[], None], **kw: Any
    ) -> None:
        super().__init__(*args, **kw)
        self._on_connect, self._on_close = on_connect, on_close

    async def _start_ws(self) -> None:
        await super()._start_ws()
        self._on_connect()

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            self._on_close()


class QuoteStream:
    """Alpaca's stock quote stream. Callbacks run on the stream's event-loop thread and must
    return quickly (hand the quote over; never block on I/O there)."""

    STOP_GRACE_SECONDS = 15.0

    def __init__(
        self,
        *,
        on_quote: Callable[[QuoteReport], None],
        on_malformed: Callable[[str], None],
        on_connect: Callable[[], None],
        on_disconnect: Callable[[], None],
        url: str | None = None,
    ) -> None:
        self._on_quote, self._on_malformed = on_quote, on_malformed
        self._stream = _StockDataStream(
            settings.ALPACA_API_KEY,
            settings.ALPACA_SECRET_KEY,
            raw_data=True,
            feed=DataFeed(settings.ALPACA_DATA_FEED),
            url_override=url or settings.ALPACA_DATA_STREAM_URL or None,
            on_connect=on_connect,
            on_close=on_disconnect,
        )
        self._lock = threading.Lock()
        self._started = threading.Event()
        self._stopping = threading.Event()
        self._finished = threading.Event()

    async def _handle(self, message: Any) -> None:
        try:
            report = quote_report_from_stream(message)
        except ValueError as exc:
            self._on_malformed(str(exc))
            return
        self._on_quote(report)

    @property
    def symbols(self) -> set[str]:
        # alpaca-py keeps its subscriptions as handlers per channel; it re-sends them all on
        # every reconnect.
        return set(self._stream._handlers["quotes"])

    def set_symbols(self, symbols: Iterable[str]) -> tuple[set[str], set[str]]:
        """Subscribe to exactly ``symbols``; returns (added, removed). Never call it from a
        callback (alpaca-py waits for the loop to send the change)."""
        wanted = set(symbols)
        with self._lock:
            current = self.symbols
            added, removed = wanted - current, current - wanted
            if added:
                try:
                    self._stream.subscribe_quotes(self._handle, *sorted(added))
                except Exception as exc:  # the socket went away: the reconnect re-subscribes
                    logger.warning("quote subscribe not sent (%s); sent on reconnect", exc)
            if removed:
                try:
                    self._stream.unsubscribe_quotes(*sorted(removed))
                except Exception as exc:
                    logger.warning("quote unsubscribe not sent (%s); dropped anyway", exc)
                    for symbol in removed:
                        self._stream._handlers["quotes"].pop(symbol, None)
        return added, removed

    def run(self) -> None:
        """Blocks until ``stop()``. Needs at least one symbol: alpaca-py spins (100% CPU)
        while it has no subscription, so callers wait for one before calling this."""
        self._started.set()
        try:
            if not self._stopping.is_set():
                self._stream.run()
        finally:
            self._finished.set()

    def stop(self) -> None:
        """Ask the stream to stop and wait (bounded) until ``run()`` returned. Safe from any
        thread except the stream's own, before, during or after ``run()``."""
        self._stopping.set()
        if not self._started.is_set():
            return  # run() will see the flag and return at once
        deadline = time.monotonic() + self.STOP_GRACE_SECONDS
        while not self._finished.wait(0.2) and time.monotonic() < deadline:
            loop = self._stream._loop
            if loop is not None and loop.is_running():
                try:
                    self._stream.stop()
                except Exception:  # TimeoutError while the loop is busy: ask again
                    logger.debug("quote stream stop pending", exc_info=True)

    def finished(self) -> bool:
        return self._finished.is_set()
