"""``manage.py paperbroker``: run the Alpaca-compatible paper broker in the foreground."""

from __future__ import annotations

import argparse
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from paperbroker.engine import CLOCK_MODES, FILL_MODELS
from paperbroker.server import PaperBrokerServer


class Command(BaseCommand):
    help = (
        "Run the paper broker: a stateful imitation of Alpaca's Trading and Market Data APIs "
        "(REST, trade_updates and market data websockets, /_paper control API) on one loopback "
        "port. Use it for the demo, for local development without Alpaca keys, and for "
        "operator failure drills (docs/paperbroker.md). Point ALPACA_BASE_URL/ALPACA_DATA_URL "
        "at http://HOST:PORT. Stops cleanly on SIGTERM/SIGINT, saving --state first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host",
            default=settings.PAPERBROKER_HOST,
            help="Interface to bind (default: settings.PAPERBROKER_HOST, %(default)s). "
            "Keep it on loopback: the /_paper control API has no authentication.",
        )
        parser.add_argument(
            "--port",
            type=int,
            default=settings.PAPERBROKER_PORT,
            help="TCP port for REST and websockets (default: settings.PAPERBROKER_PORT, "
            "%(default)s; 0 picks a free port and prints it).",
        )
        parser.add_argument(
            "--state",
            metavar="FILE",
            help="JSON file to persist orders, positions, cash, prices and clock across restarts "
            "of the broker: loaded at start if present, saved after changes (debounced, 1 s) "
            "and at shutdown. Options given explicitly win over the restored settings; "
            "omitted ones keep them. Default: no persistence.",
        )
        parser.add_argument(
            "--seed",
            type=int,
            help="Seed of the per-symbol random walk (default: 0, or the restored --state's). "
            "Bars do not depend on it: they are derived from the symbol name.",
        )
        parser.add_argument(
            "--rate-limit",
            type=int,
            metavar="N",
            help="Enforce a real limit of N /v2 requests per rolling 60 s (trading and market "
            "data counted separately, like Alpaca's 200/min); excess requests get 429 and every "
            "/v2 response carries X-RateLimit-* headers. Default: off.",
        )
        parser.add_argument(
            "--api-key",
            default=settings.PAPERBROKER_API_KEY,
            help="Key expected in APCA-API-KEY-ID and websocket auth (default: %(default)s).",
        )
        parser.add_argument(
            "--secret-key",
            default=settings.PAPERBROKER_SECRET_KEY,
            help="Secret expected in APCA-API-SECRET-KEY and websocket auth "
            "(default: %(default)s).",
        )
        parser.add_argument(
            "--random-walk",
            action=argparse.BooleanOptionalAction,
            help="Move prices by a seeded random walk every tick (default: on, or the restored "
            "--state's). With --no-random-walk prices change only through POST /_paper/prices.",
        )
        parser.add_argument(
            "--tick-seconds",
            type=float,
            help="Seconds between ticks: random-walk steps, partial fills, quote pushes, clock "
            "checks (default: 1.0, or the restored --state's; 0 = tick only on "
            "POST /_paper/tick).",
        )
        parser.add_argument(
            "--fill-model",
            choices=FILL_MODELS,
            help="How executable orders fill: immediate (before the POST returns), partial "
            "(one part per tick), manual (only via POST /_paper/orders/ID/fill). "
            "Default: immediate, or the restored --state's.",
        )
        parser.add_argument(
            "--clock",
            choices=CLOCK_MODES,
            help="Market clock: open (always open; the default for a fresh broker, handy for "
            "demos), closed, or auto (regular NYSE hours 09:30-16:00 ET on weekdays, no "
            "holidays). Without this option a restored --state keeps its clock.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["rate_limit"] is not None and options["rate_limit"] < 1:
            raise CommandError("--rate-limit must be at least 1")
        if options["tick_seconds"] is not None and options["tick_seconds"] < 0:
            raise CommandError("--tick-seconds must be >= 0")
        try:
            server = PaperBrokerServer(
                options["host"],
                options["port"],
                state_file=options["state"],
                seed=options["seed"],
                api_key=options["api_key"],
                secret_key=options["secret_key"],
                rate_limit_per_minute=options["rate_limit"],
                random_walk=options["random_walk"],
                tick_seconds=options["tick_seconds"],
                fill_model=options["fill_model"],
                clock_mode=options["clock"],
            )
        except (ValueError, KeyError, TypeError) as exc:  # an unreadable state file
            raise CommandError(f"cannot restore --state {options['state']}: {exc!r}") from exc

        def announce() -> None:
            restored = f", state restored from {options['state']}" if server.restored else ""
            self.stdout.write(
                f"paper broker listening on {server.url} (stream {server.stream_url}, "
                f"data stream {server.data_stream_url}){restored}"
            )
            self.stdout.flush()

        try:
            server.serve_forever(on_ready=announce)
        except OSError as exc:
            address = f"{options['host']}:{options['port']}"
            raise CommandError(f"cannot listen on {address}: {exc}") from exc
        saved = f"; state saved to {options['state']}" if options["state"] else ""
        self.stdout.write(f"paper broker stopped ({len(server.engine.orders)} orders){saved}")
