"""Health checks and database gauges the orders app contributes (settings.HEALTH_CHECKS,
settings.METRICS_DB_GAUGES)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from orders.models import Order, PlanStatus, TradingSwitch
from orders.risk import switch_engaged
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


def order_gauges() -> Iterator[GaugeMetricFamily]:
    """The trading switches (a missing row counts as engaged) and the open orders."""
    switches = GaugeMetricFamily(
        "trading_switch_engaged", "1 when the switch is engaged", labels=["switch"]
    )
    for name in TradingSwitch.Name.values:
        switches.add_metric([name], 1.0 if switch_engaged(name) else 0.0)
    yield switches
    open_orders = GaugeMetricFamily("orders_open", "Orders not in a terminal status")
    open_orders.add_metric([], float(Order.objects.open().count()))
    yield open_orders
