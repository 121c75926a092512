"""python manage.py sync_bars"""

from __future__ import annotations

import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from marketdata.bars import bars_sync
from tradeops.broker import BrokerError
from tradeops.symbols import symbol_parse

BAR_WIDTH = 30


def symbol_list(raw: str | None) -> list[str]:
    """``--symbols AAPL,MSFT`` (or the signal universe); a malformed name is a user error."""
    names = raw.split(",") if raw else settings.SIGNAL_UNIVERSE
    try:
        return sorted({symbol_parse(n.strip()) for n in names if n.strip()})
    except ValueError as exc:
        raise CommandError(str(exc)) from None


class Command(BaseCommand):
    help = (
        "Store the daily bars of the last N finished trading days (the broker's calendar: no "
        "weekends, no holidays) for the given symbols, default SIGNAL_UNIVERSE. Fetches only "
        "symbols with gaps, from their first gap; upserts, so running it twice changes nothing. "
        "Hydration runs it for you; use it by hand to backfill history before train_model."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--symbols", help="Comma-separated symbols (default SIGNAL_UNIVERSE)")
        parser.add_argument(
            "--days", type=int, default=252, help="Trading days back from the last close (252)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        symbols = symbol_list(options["symbols"])
        if not symbols:
            raise CommandError("no symbols: pass --symbols or set SIGNAL_UNIVERSE")
        if not 1 <= options["days"] <= 5000:
            raise CommandError("--days must be between 1 and 5000")
        tty = hasattr(self.stdout, "isatty") and self.stdout.isatty()
        self.stdout.write(
            f"sync_bars: {len(symbols)} symbols, last {options['days']} trading days..."
        )

        def progress(done: int, total: int, note: str) -> None:
            if tty:
                filled = BAR_WIDTH * done // max(total, 1)
                bar = "#" * filled + "." * (BAR_WIDTH - filled)
                sys.stdout.write(f"\r  [{bar}] {done}/{total} symbols  {note}   ")
                sys.stdout.flush()
            else:
                self.stdout.write(f"  {done}/{total} symbols: {note}")

        try:
            report = bars_sync(symbols=symbols, days=options["days"], progress=progress)
        except BrokerError as exc:
            raise CommandError(f"the broker's calendar is unavailable: {exc.message}") from None
        if tty:
            sys.stdout.write("\n")
        self.stdout.write(f"sync_bars: {report.summary()}")
