"""python manage.py hydrate_features"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from signals.models import HydrationRun
from signals.tasks import hydration_request


class Command(BaseCommand):
    help = (
        "Fill the Redis feature cache with the last N trading days of features for "
        "SIGNAL_UNIVERSE (missing bars are synced first). By default it asks the job cluster "
        "(a django-q2 job, like the start-up and daily hydrations); --now runs it in this "
        "process and prints the run. Use it after a Redis outage or a universe change."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--days", type=int, default=None, help="Trading days (FEATURE_HYDRATION_DAYS)"
        )
        parser.add_argument(
            "--now", action="store_true", help="Run here and wait instead of enqueueing a job"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"]
        if days is not None and not 1 <= days <= 2520:
            raise CommandError("--days must be between 1 and 2520")
        if not options["now"]:
            task = hydration_request("manual")
            self.stdout.write(f"hydrate_features: job {task} enqueued; watch /ready/signals")
            return
        from signals.hydration import hydration_run

        run = hydration_run(trigger="manual", days=days)
        if run is None:
            raise CommandError("another hydration is running; try again when it is done")
        self.stdout.write(
            f"hydrate_features: run {run.pk} {run.status}: {run.symbols_ok}/{run.symbols_total}"
            f" symbols, features up to {run.as_of or '-'}"
            + (f" ({run.reason})" if run.reason else "")
        )
        for symbol, why in sorted(run.failures.items()):
            self.stdout.write(f"  {symbol}: {why}")
        if run.status == HydrationRun.Status.FAILED:
            raise CommandError(f"hydration failed: {run.reason}")
