"""The quote ingestor's write path: stream → quote book → Redis, with the ring buffer when Redis
fails.

Threads: the data stream's loop calls ``offer`` (cheap: into the book, wake the writer); one
writer thread drains the book to Redis, one pipelined round trip per batch (one MSET of each
symbol's newest quote, a PUBLISH per symbol). A failed write keeps everything in the book, marks the
ingestor ``buffering`` and retries with exponential back-off; the first write that succeeds
carries the newest quote of every symbol (see ``marketdata.buffer``). No Django here: the
benchmark drives this module directly, and the command wires it to the database and HTTP.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol

import redis

from marketdata import metrics
from marketdata.buffer import QuoteBook
from marketdata.quotes import redis_client
from marketdata.quoting import (
    IngestorStatus,
    Quote,
    encode_quote,
    ingestor_state,
    quote_channel,
    quote_key,
)
from tradeops.broker_types import QuoteReport
from tradeops.symbols import symbol_or_none

logger = logging.getLogger(__name__)

# A whole batch goes in one round trip; loopback Redis answers thousands of commands in
# milliseconds, so this only bounds a hung Redis.
WRITE_TIMEOUT_SECONDS = 2.0


def utcnow() -> datetime:
    return datetime.now(UTC)


class QuoteWriter(Protocol):
    def write(self, quotes: list[Quote]) -> None: ...

    def ping(self) -> None: ...


class RedisQuoteWriter:
    """One round trip per batch: one MSET of every symbol's quote:latest:{SYM} (atomic: a
    reader never sees half a batch) and a PUBLISH quote:{SYM} per symbol, pipelined. A batch
    that fails is simply written again (both are idempotent for readers). Keys do not expire:
    a symbol nobody watches any more keeps its last quote, which its age makes unusable."""

    def __init__(self, url: str, *, timeout: float = WRITE_TIMEOUT_SECONDS) -> None:
        self.client = redis_client(url, timeout=timeout)

    def write(self, quotes: list[Quote]) -> None:
        if not quotes:
            return
        payloads = {quote.symbol: encode_quote(quote) for quote in quotes}
        pipe = self.client.pipeline(transaction=False)
        pipe.mset({quote_key(symbol): payload for symbol, payload in payloads.items()})
        for symbol, payload in payloads.items():
            pipe.publish(quote_channel(symbol), payload)
        pipe.execute()

    def ping(self) -> None:
        self.client.ping()


class QuoteIngestor:
    """Thread-safe: ``offer`` from the stream, ``run_writer`` in its own thread, the rest from
    anywhere. ``on_state_change`` is called (outside the lock) whenever the state changes."""

    def __init__(
        self,
        *,
        writer: QuoteWriter | None,
        buffer_size: int,
        retry_max_seconds: float,
        retry_min_seconds: float = 0.05,
        on_state_change: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.writer = writer
        self.retry_min, self.retry_max = retry_min_seconds, retry_max_seconds
        self.on_state_change = on_state_change
        self.clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._book = QuoteBook(buffer_size)
        self._symbols: list[str] = []
        self._connected = False
        self._redis_ok = False
        self._detail = "starting" if writer else "REDIS_URL is not set: quotes stay in memory"
        self._received = self._written = self._buffered = self._errors = self._late = 0
        self._published = (0, 0, 0)  # received, buffered, late as last told to Prometheus
        self._symbols_seen: dict[str, str] = {}
        self._last_quote_at: datetime | None = None
        self._warned_symbols: set[str] = set()

    # --- input (stream thread) ----------------------------------------------------------------
    def offer(self, report: QuoteReport) -> bool:
        """Take one decoded quote from the stream; False when it was skipped. The hot path:
        counters are published to Prometheus by the writer, per batch, not per quote."""
        symbol = self._symbols_seen.get(report.symbol)
        if symbol is None:
            symbol = symbol_or_none(report.symbol)
            if symbol is None:
                self._skip_bad_symbol(report.symbol)
                return False
            if len(self._symbols_seen) < 100_000:
                self._symbols_seen[report.symbol] = symbol
        now = self.clock()
        quote = Quote.from_report(report, symbol=symbol, received_at=now)
        with self._lock:
            if not self._book.add(quote):
                self._late += 1
                return False
            self._received += 1
            self._last_quote_at = now
            if not self._redis_ok:
                self._buffered += 1
        if not self._wake.is_set():
            self._wake.set()
        return True

    def malformed(self, reason: str) -> None:
        """A stream message that could not be read: counted and skipped, never fatal."""
        metrics.QUOTES_SKIPPED.labels("malformed").inc()
        logger.warning("malformed quote message skipped: %s", reason)

    def _skip_bad_symbol(self, raw: object) -> None:
        metrics.QUOTES_SKIPPED.labels("bad_symbol").inc()
        text = repr(raw)[:40]
        if text not in self._warned_symbols and len(self._warned_symbols) < 1000:
            self._warned_symbols.add(text)
            logger.warning("quote for malformed symbol %s ignored", text)

    # --- connection and universe ------------------------------------------------------------
    def set_connected(self, connected: bool) -> None:
        self._change(lambda: setattr(self, "_connected", connected))
        if connected:
            metrics.QUOTE_STREAM_CONNECTS.inc()

    def set_symbols(self, symbols: Iterable[str]) -> set[str]:
        """The symbols watched now; returns those that left (forgotten by the book)."""
        wanted = sorted(set(symbols))

        def change() -> set[str]:
            removed = set(self._symbols) - set(wanted)
            self._symbols = wanted
            self._book.forget(removed)
            return removed

        return self._change(change)

    def _change(self, mutate: Callable[[], object]) -> object:
        with self._lock:
            before = self._state()
            result = mutate()
            changed = self._state() != before
            self._publish_counters()
        if changed and self.on_state_change is not None:
            self.on_state_change()
        return result

    def _publish_counters(self) -> None:
        """Under the lock: bring the Prometheus counters up to date with ours."""
        received, buffered, late = self._published
        metrics.QUOTES_RECEIVED.inc(self._received - received)
        metrics.QUOTES_BUFFERED.inc(self._buffered - buffered)
        metrics.QUOTES_SKIPPED.labels("out_of_order").inc(self._late - late)
        metrics.QUOTE_BUFFER_DEPTH.set(self._book.depth)
        self._published = (self._received, self._buffered, self._late)

    def _state(self) -> str:
        return ingestor_state(
            has_symbols=bool(self._symbols), connected=self._connected, redis_ok=self._redis_ok
        )

    # --- output (writer thread) ---------------------------------------------------------------
    def start(self) -> None:
        """Find out whether Redis answers before the first quote (down at start: buffering)."""
        if self.writer is None:
            return
        try:
            self.writer.ping()
        except (redis.RedisError, OSError) as exc:
            self._redis_failed(exc)
        else:
            self._change(lambda: self._mark_redis_ok())

    def run_writer(self, stop: threading.Event) -> None:
        """The writer thread's body: until ``stop``, then one last flush."""
        failures = 0
        while not stop.is_set():
            if failures:
                stop.wait(self._backoff(failures))
            else:
                self._wake.wait(timeout=1.0)
            self._wake.clear()
            if stop.is_set():
                break
            failures = 0 if self.flush() else failures + 1
        self.flush()

    def _backoff(self, failures: int) -> float:
        return min(self.retry_max, self.retry_min * 2 ** min(failures - 1, 20))

    def flush(self) -> bool:
        """Write what is pending; False when Redis failed (everything stays buffered)."""
        if self.writer is None:
            with self._lock:
                self._publish_counters()
            return True
        with self._lock:
            batch, covered = self._book.take()
            probe = not batch and not self._redis_ok
        try:
            if batch:
                self.writer.write(batch)
            elif probe:
                self.writer.ping()  # nothing to write, but is Redis back?
            else:
                with self._lock:
                    self._publish_counters()
                return True
        except Exception as exc:  # Redis down, or anything unexpected: keep the quotes, retry
            if not isinstance(exc, redis.RedisError | OSError):
                logger.exception("unexpected error writing quotes to Redis")
            with self._lock:
                self._book.failed(batch)
            self._redis_failed(exc)
            return False

        def done() -> None:
            self._book.written(covered)
            self._written += len(batch)
            self._mark_redis_ok()

        self._change(done)
        if batch:
            metrics.QUOTES_WRITTEN.inc(len(batch))
            metrics.QUOTE_REDIS_BATCH.observe(len(batch))
        return True

    def _mark_redis_ok(self) -> None:
        if not self._redis_ok:
            logger.info("Redis writes succeed: streaming")
        self._redis_ok = True
        self._detail = ""

    def _redis_failed(self, exc: BaseException) -> None:
        metrics.QUOTE_REDIS_WRITE_ERRORS.inc()

        def mark() -> None:
            if self._redis_ok or not self._errors:
                logger.warning("Redis write failed, buffering quotes: %s", exc)
            self._redis_ok = False
            self._errors += 1
            self._detail = f"Redis: {exc.__class__.__name__}: {exc}"[:300]

        self._change(mark)

    # --- reads (fallback endpoint, heartbeat) -------------------------------------------------
    def latest(self, symbol: str) -> Quote | None:
        with self._lock:
            return self._book.latest.get(symbol)

    def recent(self, symbol: str) -> list[Quote]:
        with self._lock:
            return self._book.recent(symbol)

    def all_latest(self) -> list[Quote]:
        with self._lock:
            return sorted(self._book.latest.values(), key=lambda q: q.symbol)

    def status(self) -> IngestorStatus:
        with self._lock:
            return IngestorStatus(
                state=self._state(),
                detail=self._detail,
                symbols=list(self._symbols),
                connected=self._connected,
                redis_ok=self._redis_ok,
                quotes_received=self._received,
                quotes_written=self._written,
                quotes_buffered=self._buffered,
                redis_errors=self._errors,
                buffer_depth=self._book.depth,
                last_quote_at=self._last_quote_at,
            )
