"""python manage.py recover_slices"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from orders.recovery import slices_recover


class Command(BaseCommand):
    help = (
        "Re-examine every pending TWAP slice after a restart (zombie-slice recovery). Runs by "
        "itself after the startup reconciliation; run it by hand after a dispatcher crash once "
        "the broker state is reconciled. Claimed slices of a dead dispatcher are looked up at "
        "the broker (applied if found, released for sending under the same id if not); slices "
        "of ended plans are canceled; a tripped breaker blocks them; late slices follow the "
        "misfire rule (market open: due now; closed or clock unknown: moved to the next open "
        "or held). Never sends anything itself."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Ask the broker and report what would change, but write nothing",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = slices_recover(dry_run=options["dry_run"], progress=self.stdout.write)
        prefix = (
            "recover_slices --dry-run (nothing written)"
            if options["dry_run"]
            else ("recover_slices")
        )
        self.stdout.write(f"{prefix}: {report.summary()}")
