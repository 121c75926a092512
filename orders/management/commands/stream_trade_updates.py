"""python manage.py stream_trade_updates"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from orders import hooks
from orders.stream import StreamConsumer, trade_stream_register, trade_stream_stop
from tradeops.checks import TRADING
from tradeops.trade_stream import TradeUpdateStream


class Command(BaseCommand):
    # A worker serving no HTTP runs only our trading checks at start, not all (which load the
    # URLconf, so the whole web stack): tradeops/management/commands/qcluster.py says why.
    requires_system_checks = [TRADING]
    help = (
        "Consume Alpaca's trade_updates websocket and apply every event through the order "
        "update path (source=stream). Runs until SIGTERM/SIGINT; reconnects with backoff and "
        "asks for a reconciliation after every (re)connect, because Alpaca does not replay "
        "events missed while disconnected. Run exactly one per account in production."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--url", help=f"Stream URL (default {settings.ALPACA_STREAM_URL!r})")
        parser.add_argument(
            "--seconds",
            type=float,
            default=0,
            help="Stop after this many seconds (0 = run until signalled); for drills and tests.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # The heartbeat row (TradeStreamRun) shows in the admin and in /metrics
        # (trade_streams_connected) that a consumer is alive and connected.
        run = trade_stream_register()
        consumer = StreamConsumer(run_id=run.pk)
        stream = TradeUpdateStream(
            on_event=consumer.on_event,
            on_connect=consumer.on_connect,
            on_heartbeat=consumer.on_heartbeat,
            heartbeat_seconds=consumer.HEARTBEAT_SECONDS,
            url=options["url"],
        )
        hooks.order_process_started.send(sender=self.__class__, kind="stream")

        def stop(*_: Any) -> None:
            # Signal handlers run in the main thread, which runs alpaca-py's event loop, and
            # TradingStream.stop() waits on that loop: calling it here would deadlock.
            self.stdout.write("stopping trade stream...")
            threading.Thread(target=stream.stop, daemon=True).start()

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        timer = threading.Timer(options["seconds"], stop) if options["seconds"] else None
        if timer is not None:
            timer.start()
        url = options["url"] or settings.ALPACA_STREAM_URL
        self.stdout.write(f"streaming trade updates from {url}")
        try:
            stream.run()
        finally:
            if timer is not None:
                timer.cancel()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            trade_stream_stop(run_id=run.pk)
        self.stdout.write(
            f"trade stream stopped: {consumer.events} events, {consumer.connects} connects"
        )
