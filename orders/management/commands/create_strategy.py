"""python manage.py create_strategy <id> [--token-out FILE]"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from orders.models import Strategy
from orders.strategies import strategy_create, strategy_token_issue
from tradeops.errors import TradeOpsError


class Command(BaseCommand):
    help = (
        "Create a strategy and an API token for it (clients send 'Authorization: Token <key>'). "
        "The key is printed once (or written to --token-out with mode 0600); only its hash is "
        "stored. With --new-token, issue another token for an existing strategy (key rotation)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "strategy_id", help="Lowercase id, e.g. 'alpha'. 'external' is reserved."
        )
        parser.add_argument("--name", default="", help="Human-readable name")
        parser.add_argument("--token-out", type=Path, help="Write the key to this file (0600)")
        parser.add_argument(
            "--new-token", action="store_true", help="The strategy exists: issue another token"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        sid, actor = options["strategy_id"], "command:create_strategy"
        try:
            if options["new_token"]:
                strategy = Strategy.objects.filter(pk=sid).first()
                if strategy is None:
                    raise CommandError(f"No strategy '{sid}'.")
            else:
                strategy = strategy_create(strategy_id=sid, name=options["name"], actor=actor)
            key = strategy_token_issue(strategy=strategy, actor=actor)
        except TradeOpsError as exc:
            raise CommandError(exc.message) from None
        out: Path | None = options["token_out"]
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(key + "\n")
            self.stdout.write(f"strategy {sid}: token written to {out}")
        else:
            self.stdout.write(f"strategy {sid}: token {key}")
            self.stdout.write("Store it now: it cannot be shown again.")
