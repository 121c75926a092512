"""python manage.py reconcile [--once] [--dry-run]"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from reconciliation.diff import OrdersDiff
from reconciliation.engine import RunOutcome, reconciliation_run
from tradeops.checks import TRADING


class Command(BaseCommand):
    # A worker serving no HTTP runs only our trading checks at start, not all (which load the
    # URLconf, so the whole web stack): tradeops/management/commands/qcluster.py says why.
    requires_system_checks = [TRADING]
    help = (
        "Reconcile the database with the broker: order statuses and fills, orders the broker "
        "never received, orphan orders (quarantined), positions. --once runs one pass and "
        "exits (use it after a restart or in a drill); without it, runs every "
        "RECONCILIATION_INTERVAL_SECONDS until SIGTERM (an alternative to the job cluster's "
        "schedule). --dry-run prints what would change and changes nothing."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="One run, then exit")
        parser.add_argument("--dry-run", action="store_true", help="Print the diff only")
        parser.add_argument(
            "--kind",
            default="manual",
            choices=["manual", "startup", "periodic"],
            help="Recorded kind of the run (default manual)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        if not options["once"]:
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            signal.signal(signal.SIGINT, lambda *_: stop.set())
        while True:
            self.stdout.write(f"reconciling ({'dry run' if options['dry_run'] else 'apply'})...")
            outcome = reconciliation_run(kind=options["kind"], dry_run=options["dry_run"])
            self._report(outcome, dry_run=options["dry_run"])
            if options["once"] or stop.wait(settings.RECONCILIATION_INTERVAL_SECONDS):
                return

    def _report(self, outcome: RunOutcome, *, dry_run: bool) -> None:
        if outcome.skipped:
            self.stdout.write("skipped: another reconciliation holds the lock")
            return
        run, diff = outcome.run, outcome.diff
        if diff is not None:
            self._print_diff(diff)
        if run.status == run.Status.FAILED:
            self.stderr.write(f"FAILED: {run.error_text}")
            return
        verb = "would change" if dry_run else "changed"
        self.stdout.write(
            f"{run.kind} run {run.status}: checked {run.orders_checked}, {verb} "
            f"{len(diff.updates) if dry_run else run.orders_updated} orders "
            f"({len(diff.fills_corrected) if dry_run else run.fills_corrected} fills), failed "
            f"{len(diff.mark_failed) if dry_run else run.marked_failed}, reopened "
            f"{len(run.summary.get('reopened', []))}, orphans "
            f"{len(diff.new_orphans)} new, positions {run.position_mismatches}, conflicts "
            f"{run.conflicts_skipped}, broker calls {run.broker_calls} in "
            f"{run.duration_seconds:.2f}s"
        )

    def _print_diff(self, diff: OrdersDiff) -> None:
        for o in diff.updates:
            self.stdout.write(
                f"  update   {o.client_order_id} -> {o.status} {o.filled_qty}/{o.qty}"
            )
        for coid in diff.mark_failed:
            self.stdout.write(f"  failed   {coid} (never reached the broker)")
        for o in diff.new_orphans:
            self.stdout.write(
                f"  orphan   {o.broker_order_id} {o.side} {o.qty} {o.symbol} "
                f"({o.status}) -> quarantine *:{o.symbol}"
            )
        for coid, ours, theirs in diff.id_conflicts:
            self.stdout.write(f"  CONFLICT {coid}: ours {ours}, broker {theirs}")
