"""The ``stream_quotes`` process: the data stream, the write path, the fallback endpoint and
the housekeeping (universe, heartbeat) wired together, with a clean stop.

Threads: main runs alpaca-py's event loop (``QuoteStream.run``); ``quote-writer`` drains the
book into Redis; ``quote-housekeeping`` refreshes the symbol universe every
QUOTE_UNIVERSE_REFRESH_SECONDS and writes the heartbeat row every QUOTE_HEARTBEAT_SECONDS (at
once on a state change); the fallback endpoint serves from its own threads. A database outage
only delays the heartbeat: quotes keep flowing to Redis and to the endpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections
from django.utils import timezone

from marketdata.fallback import FallbackServer
from marketdata.ingest import QuoteIngestor, RedisQuoteWriter
from marketdata.quoting import IngestorStatus
from marketdata.selectors import quote_universe
from marketdata.services import (
    quote_ingestor_heartbeat,
    quote_ingestor_register,
    quote_ingestor_stop,
)
from tradeops.data_stream import QuoteStream

logger = logging.getLogger(__name__)


class QuoteIngestorProcess:
    def __init__(
        self,
        *,
        symbols: list[str],
        stream_url: str | None = None,
        host: str | None = None,
        port: int | None = None,
        say: Callable[[str], None] = logger.info,
    ) -> None:
        self.extra_symbols = symbols
        self.say = say
        self._stop = threading.Event()
        self._poke = threading.Event()
        writer = RedisQuoteWriter(settings.REDIS_URL) if settings.REDIS_URL else None
        self.ingestor = QuoteIngestor(
            writer=writer,
            buffer_size=settings.QUOTE_BUFFER_SIZE,
            retry_max_seconds=settings.QUOTE_REDIS_RETRY_MAX_SECONDS,
            on_state_change=self._poke.set,
        )
        self.server = FallbackServer(
            self.ingestor,
            settings.QUOTE_FALLBACK_HOST if host is None else host,
            settings.QUOTE_FALLBACK_PORT if port is None else port,
        )
        self.stream = QuoteStream(
            on_quote=self.ingestor.offer,
            on_malformed=self.ingestor.malformed,
            on_connect=lambda: self.ingestor.set_connected(True),
            on_disconnect=lambda: self.ingestor.set_connected(False),
            url=stream_url,
        )
        self.row_id: int | None = None
        self._threads: list[threading.Thread] = []
        self._reported_state = ""

    # --- lifecycle --------------------------------------------------------------------------
    def run(self, *, seconds: float = 0) -> IngestorStatus:
        """Until ``stop()`` (or ``seconds``); returns the final status. The fallback endpoint
        is already listening when this is called (the constructor binds it)."""
        deadline = time.monotonic() + seconds if seconds else None
        self.server.start()
        self.ingestor.start()
        self.row_id = quote_ingestor_register(fallback_url=self.server.url, now=timezone.now()).pk
        self._spawn("quote-writer", self.ingestor.run_writer, self._stop)
        self._spawn("quote-housekeeping", self._housekeeping)
        if deadline is not None:
            timer = threading.Timer(seconds, self.stop)
            timer.daemon = True
            timer.start()
        try:
            # alpaca-py spins while it has no subscription: start it once there is one.
            while not self._stop.is_set() and not self.stream.symbols:
                self._stop.wait(0.1)
            if not self._stop.is_set():
                self.stream.run()
        finally:
            self._stop.set()
            self._poke.set()
            for thread in self._threads:
                thread.join(timeout=10)
            self.server.stop()
            self._final_heartbeat()
        return self.ingestor.status()

    def stop(self) -> None:
        """From any thread but the stream's (a signal handler: hand it to a thread)."""
        self._stop.set()
        self._poke.set()
        self.stream.stop()

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # --- housekeeping thread ------------------------------------------------------------------
    def _housekeeping(self) -> None:
        next_universe = next_beat = 0.0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                try:
                    if now >= next_universe:
                        next_universe = now + settings.QUOTE_UNIVERSE_REFRESH_SECONDS
                        self._refresh_universe()
                    if now >= next_beat or self._poke.is_set():
                        self._poke.clear()
                        next_beat = now + settings.QUOTE_HEARTBEAT_SECONDS
                        self._heartbeat()
                except Exception:  # never let housekeeping die: quotes must keep flowing
                    logger.exception("quote ingestor housekeeping failed; retrying")
                self._poke.wait(max(min(next_universe, next_beat) - time.monotonic(), 0.01))
        finally:
            connections.close_all()

    def _refresh_universe(self) -> None:
        close_old_connections()
        try:
            symbols = quote_universe(extra=self.extra_symbols)
        except DatabaseError as exc:  # keep streaming what we have; try again next time
            logger.warning("quote universe not refreshed: %s", exc)
            return
        removed = self.ingestor.set_symbols(symbols)
        added, _ = self.stream.set_symbols(symbols)
        if added or removed:
            self.say(
                f"symbols: {len(symbols)} watched"
                + (f", +{','.join(sorted(added))}" if added else "")
                + (f", -{','.join(sorted(removed))}" if removed else "")
            )

    def _heartbeat(self) -> None:
        status = self.ingestor.status()
        if status.state != self._reported_state:
            self._reported_state = status.state
            self.say(f"state: {status.state}" + (f" ({status.detail})" if status.detail else ""))
        if self.row_id is None:
            return
        close_old_connections()
        try:
            quote_ingestor_heartbeat(ingestor_id=self.row_id, status=status, now=timezone.now())
        except DatabaseError as exc:
            logger.warning("quote ingestor heartbeat not written: %s", exc)

    def _final_heartbeat(self) -> None:
        if self.row_id is None:
            return
        try:
            self._heartbeat()
            quote_ingestor_stop(ingestor_id=self.row_id, now=timezone.now())
        except DatabaseError as exc:
            logger.warning("quote ingestor stop not recorded: %s", exc)
        finally:
            close_old_connections()
