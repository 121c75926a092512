"""The ingestor's in-memory quote book: the ring buffer of the fix plan (§6) and the queue
between the data stream and Redis.

Pure and single-threaded (the ingestor serialises access with its lock): no clock, no I/O.

- ``history``: the last ``size`` quotes of every symbol (what the fallback endpoint's
  ``/recent`` serves).
- ``pending``: the newest quote of every symbol that Redis does not have yet. A batch for
  Redis is exactly these (one key write per symbol however many quotes arrived), so after an outage
  the first successful write restores the newest quote of every symbol at once: a reader
  never gets an older quote from Redis than the buffer holds. Older buffered quotes are
  never written back: that would move the key backwards, and a live channel's subscribers
  want the current quote, not a replay.
- ``backlog``: how many received quotes are not in Redis (per symbol, at most ``size``): the
  buffer's depth.
"""

from __future__ import annotations

from collections import deque

from marketdata.quoting import Quote


class QuoteBook:
    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("the buffer holds at least one quote per symbol")
        self.size = size
        self.latest: dict[str, Quote] = {}
        self.history: dict[str, deque[Quote]] = {}
        self.pending: dict[str, Quote] = {}
        self.backlog: dict[str, int] = {}

    def add(self, quote: Quote) -> bool:
        """Record a received quote; False (and nothing changes) when it is older than the
        newest one already known for its symbol (a late frame must not move prices back)."""
        symbol = quote.symbol
        current = self.latest.get(symbol)
        if current is not None and quote.timestamp < current.timestamp:
            return False
        self.latest[symbol] = quote
        ring = self.history.get(symbol)
        if ring is None:
            ring = self.history[symbol] = deque(maxlen=self.size)
        ring.append(quote)
        self.pending[symbol] = quote
        self.backlog[symbol] = min(self.backlog.get(symbol, 0) + 1, self.size)
        return True

    def take(self) -> tuple[list[Quote], dict[str, int]]:
        """The batch to write (newest quote per pending symbol) and the backlog it covers;
        pass both back to ``written`` or ``failed``."""
        batch = list(self.pending.values())
        self.pending = {}
        return batch, {q.symbol: self.backlog.get(q.symbol, 0) for q in batch}

    def written(self, covered: dict[str, int]) -> None:
        """The batch reached Redis: its quotes, and every older one, are no longer backlog."""
        for symbol, count in covered.items():
            left = self.backlog.get(symbol, 0) - count
            if symbol in self.pending:  # newer quotes arrived while the batch was written
                left = max(left, 1)
            if left > 0:
                self.backlog[symbol] = left
            else:
                self.backlog.pop(symbol, None)

    def failed(self, batch: list[Quote]) -> None:
        """The batch did not reach Redis: each quote is pending again unless a newer one of
        its symbol arrived meanwhile (that one is written instead)."""
        for quote in batch:
            self.pending.setdefault(quote.symbol, quote)

    def forget(self, symbols: set[str]) -> None:
        """Symbols that left the universe: nothing of theirs is kept or written any more."""
        for symbol in symbols:
            for store in (self.latest, self.history, self.pending, self.backlog):
                store.pop(symbol, None)

    @property
    def depth(self) -> int:
        """Received quotes not in Redis yet (at most ``size`` per symbol)."""
        return sum(self.backlog.values())

    def recent(self, symbol: str) -> list[Quote]:
        """The symbol's buffered quotes, newest first."""
        return list(reversed(self.history.get(symbol, ())))
