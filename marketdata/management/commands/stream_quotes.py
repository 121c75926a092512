"""python manage.py stream_quotes [--symbols AAPL,MSFT]"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from marketdata.runner import QuoteIngestorProcess
from tradeops.checks import TRADING
from tradeops.symbols import symbol_or_none


class Command(BaseCommand):
    # A worker serving no HTTP runs only our trading checks at start, not all (which load the
    # URLconf, so the whole web stack): tradeops/management/commands/qcluster.py says why.
    requires_system_checks = [TRADING]
    help = (
        "Stream live quotes from the broker's market data websocket into Redis (latest quote "
        "per symbol + a PUBLISH per quote), keeping them in a ring buffer served on "
        "QUOTE_FALLBACK_HOST:QUOTE_FALLBACK_PORT while Redis is down. Watches --symbols, "
        "QUOTE_SYMBOLS and every symbol in play (open orders, positions, active TWAP plans, "
        "the signal universe), refreshed every QUOTE_UNIVERSE_REFRESH_SECONDS. Runs until "
        "SIGTERM/SIGINT; reconnects by itself. Run one per account (Alpaca allows one data "
        "connection on the free plan)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--symbols", default="", help="Comma-separated symbols to watch in any case"
        )
        parser.add_argument(
            "--url", help=f"Data stream URL (default {settings.ALPACA_DATA_STREAM_URL!r})"
        )
        parser.add_argument(
            "--port",
            type=int,
            help=f"Fallback endpoint port (default {settings.QUOTE_FALLBACK_PORT}; 0 = any free)",
        )
        parser.add_argument(
            "--seconds",
            type=float,
            default=0,
            help="Stop after this many seconds (0 = run until signalled); for drills and tests.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        symbols = [s.strip() for s in options["symbols"].split(",") if s.strip()]
        bad = [s for s in symbols if symbol_or_none(s) is None]
        if bad:
            raise CommandError(f"--symbols: not US equity symbols: {', '.join(map(repr, bad))}")
        try:
            process = QuoteIngestorProcess(
                symbols=symbols,
                stream_url=options["url"],
                port=options["port"],
                say=lambda line: self.stdout.write(f"stream_quotes: {line}"),
            )
        except OSError as exc:
            port = options["port"] if options["port"] is not None else settings.QUOTE_FALLBACK_PORT
            raise CommandError(f"fallback endpoint cannot listen on port {port}: {exc}") from None

        def stop(*_: Any) -> None:
            # The handler runs on the main thread, which runs alpaca-py's event loop; stopping
            # waits for that loop, so it must happen on another thread.
            self.stdout.write("stream_quotes: stopping...")
            threading.Thread(target=process.stop, daemon=True).start()

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        url = options["url"] or settings.ALPACA_DATA_STREAM_URL
        redis = "Redis " + ("configured" if settings.REDIS_URL else "NOT configured (REDIS_URL)")
        self.stdout.write(
            f"stream_quotes: quotes from {url}; {redis}; fallback endpoint {process.server.url}"
        )
        try:
            final = process.run(seconds=options["seconds"])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write(
            f"stream_quotes stopped: {final.quotes_received} quotes received, "
            f"{final.quotes_written} written to Redis, {final.quotes_buffered} buffered, "
            f"{final.redis_errors} Redis errors"
        )
