"""Health checks the orders app contributes (settings.HEALTH_CHECKS)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from orders.models import Order, PlanStatus
from tradeops.health import DEGRADED, OK, CheckResult

OVERDUE_SECONDS = 30


def check_twap_dispatch() -> CheckResult:
    """Slices of active plans that should have gone out a while ago and nobody has claimed:
    no ``run_slices`` is running, or every slice is being deferred (gate, quarantine). Not a
    readiness condition: the console must keep serving cancels."""
    overdue = (
        Order.objects.slices_unclaimed()
        .filter(
            scheduled_time__lt=timezone.now() - timedelta(seconds=OVERDUE_SECONDS),
            plan__status=PlanStatus.ACTIVE,
        )
        .count()
    )
    if overdue:
        detail = (
            f"{overdue} TWAP slices overdue by more than {OVERDUE_SECONDS}s: is run_slices running?"
        )
        return CheckResult("twap_dispatch", DEGRADED, True, detail)
    return CheckResult("twap_dispatch", OK, True, "no overdue slices")
