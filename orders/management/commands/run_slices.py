"""python manage.py run_slices"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone

from orders import hooks
from orders.dispatch import SliceDispatcher, dispatcher_register, slices_next_due
from orders.selectors import slices_due, slices_pending_exist
from tradeops.checks import TRADING


class _ChangeReport:
    """What changed since the last report line, at most every ``every`` seconds: an idle or
    steady dispatcher prints nothing (a heartbeat line every few seconds buries the lines that
    matter; liveness is the DispatcherRun heartbeat)."""

    def __init__(self, *, every: float) -> None:
        self.every = every
        self._reported: Counter[str] = Counter()
        self._at = float("-inf")  # the first change is reported at once

    def due(self, outcomes: Counter[str]) -> str | None:
        if time.monotonic() - self._at < self.every:
            return None
        changed = outcomes - self._reported  # outcome counts only grow
        if not changed:
            return None
        self._reported, self._at = outcomes.copy(), time.monotonic()
        return ", ".join(f"+{n} {outcome}" for outcome, n in sorted(changed.items()))


class Command(BaseCommand):
    # A worker serving no HTTP runs only our trading checks at start, not all (which load the
    # URLconf, so the whole web stack): tradeops/management/commands/qcluster.py says why.
    requires_system_checks = [TRADING]
    help = (
        "The TWAP slice dispatcher: a loop that sends every slice at its scheduled second. It "
        "claims due slices (SELECT ... FOR UPDATE SKIP LOCKED, so several dispatchers never "
        "send one slice twice), runs the pre-send checks (plan active, kill switch, breaker, "
        "SLICE_PRESEND_CHECKS), applies the misfire rule with the broker clock and submits "
        "through the single-order path. Run one or more per account in production, next to "
        "the job cluster; stop with SIGTERM (unsent claims are handed back)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--poll",
            type=float,
            default=settings.TWAP_DISPATCH_POLL_SECONDS,
            help="Longest sleep between looks for due slices, seconds "
            f"(default TWAP_DISPATCH_POLL_SECONDS={settings.TWAP_DISPATCH_POLL_SECONDS})",
        )
        parser.add_argument(
            "--batch",
            type=int,
            default=settings.TWAP_DISPATCH_BATCH,
            help=f"Slices claimed per transaction (default {settings.TWAP_DISPATCH_BATCH})",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=settings.TWAP_DISPATCH_WORKERS,
            help="Threads sending claimed slices (default "
            f"{settings.TWAP_DISPATCH_WORKERS}; always 1 on SQLite)",
        )
        parser.add_argument(
            "--once", action="store_true", help="One pass over what is due now, then exit"
        )
        parser.add_argument(
            "--until-idle",
            action="store_true",
            help="Exit once no pending slice is left (benchmarks, drills)",
        )
        parser.add_argument(
            "--seconds", type=float, default=0, help="Stop after this many seconds (0 = never)"
        )
        parser.add_argument(
            "--report-seconds",
            type=float,
            default=10.0,
            help="Print what changed (slices handled since the last line, by outcome) at most "
            "this often; nothing while nothing changes (default 10; 0 = after every change)",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="List the slices that are due now and exit; claims and sends nothing",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["poll"] <= 0 or options["batch"] < 1 or options["workers"] < 1:
            raise CommandError("--poll must be > 0, --batch and --workers at least 1.")
        if options["report_seconds"] < 0:
            raise CommandError("--report-seconds must be >= 0.")
        if options["dry_run"]:
            self._dry_run()
            return
        workers = 1 if connection.vendor == "sqlite" else options["workers"]
        wake = threading.Event()
        dispatcher: SliceDispatcher | None = None
        stop_requested = False

        def stop(*_: Any) -> None:
            # Installed before anything else: a SIGTERM during start-up still stops cleanly.
            nonlocal stop_requested
            stop_requested = True
            if dispatcher is not None:
                dispatcher.stopping = True
            wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        # Everything this process will believe about the broker is unverified until the next
        # reconciliation: the gate closes until then, and recovery follows it. Closed before the
        # registration, so a registered dispatcher always means a closed (or since re-opened) gate.
        hooks.order_process_started.send(sender=self.__class__, kind="dispatcher")
        run = dispatcher_register()
        dispatcher = SliceDispatcher(
            batch=options["batch"], workers=workers, poll_seconds=options["poll"], run=run
        )
        dispatcher.stopping = stop_requested
        deadline = time.monotonic() + options["seconds"] if options["seconds"] else None
        self.stdout.write(
            f"run_slices #{run.pk}: pid {run.pid}, {workers} sender thread(s), "
            f"batch {options['batch']}, poll {options['poll']}s"
        )
        started = time.monotonic()
        report = _ChangeReport(every=options["report_seconds"])
        try:
            while not dispatcher.stopping:
                claimed = dispatcher.tick()
                if options["once"] and claimed < options["batch"]:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if options["until_idle"] and not claimed and not slices_pending_exist():
                    break
                if (line := report.due(dispatcher.outcomes)) is not None:
                    self.stdout.write(f"run_slices: {line}")
                if claimed < options["batch"]:
                    wake.wait(dispatcher.sleep_seconds())
        finally:
            dispatcher.close()
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"run_slices #{run.pk} stopped after {elapsed:.1f}s: {self._outcomes(dispatcher)}"
        )

    @staticmethod
    def _outcomes(dispatcher: SliceDispatcher) -> str:
        counts = dispatcher.outcomes
        if not counts:
            return "no slices handled"
        return ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))

    def _dry_run(self) -> None:
        now = timezone.now()
        count = 0
        for order in slices_due(now):
            count += 1
            late = (now - order.scheduled_time).total_seconds()
            self.stdout.write(
                f"  plan {order.plan_id} slice {order.slice_num} {order.client_order_id} "
                f"{order.side} {order.qty} {order.symbol} due {late:.1f}s ago "
                f"(plan {order.plan.status})"
            )
        upcoming = slices_next_due()
        nxt = f"; next due {upcoming.isoformat()}" if upcoming and upcoming > now else ""
        self.stdout.write(f"run_slices --dry-run: {count} slices due now{nxt}; nothing sent")
