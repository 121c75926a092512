"""Health checks and database gauges the orders app contributes (settings.HEALTH_CHECKS,
settings.METRICS_DB_GAUGES): TWAP dispatch, the trading switches, open orders, orders in doubt,
and the heartbeats of ``run_slices`` and ``stream_trade_updates``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from orders.dispatch import SliceDispatcher
from orders.models import Order, TradingSwitch
from orders.risk import switch_engaged
from orders.selectors import (
    dispatchers_alive,
    orders_unconfirmed,
    slices_overdue,
    trade_streams_connected,
)
from orders.stream import StreamConsumer
from tradeops.health import DEGRADED, OK, CheckResult

OVERDUE_SECONDS = 30
# A process that missed this many heartbeats in a row counts as gone (the admin's "alive").
MISSED_BEATS = 3


def check_twap_dispatch() -> CheckResult:
    """Slices of active plans that should have gone out a while ago and nobody has claimed:
    no ``run_slices`` is running, or every slice is being deferred (gate, quarantine). Not a
    readiness condition: the console must keep serving cancels."""
    overdue = slices_overdue(now=timezone.now(), seconds=OVERDUE_SECONDS).count()
    if overdue:
        detail = (
            f"{overdue} TWAP slices overdue by more than {OVERDUE_SECONDS}s: is run_slices running?"
        )
        return CheckResult("twap_dispatch", DEGRADED, True, detail)
    return CheckResult("twap_dispatch", OK, True, "no overdue slices")


def order_gauges() -> Iterator[GaugeMetricFamily]:
    """Read from the database at scrape time, right whichever process serves them: the trading
    switches (a missing row counts as engaged), the open orders, orders in doubt, overdue
    slices, the dispatchers' and trade streams' heartbeats."""
    switches = GaugeMetricFamily(
        "trading_switch_engaged", "1 when the switch is engaged", labels=["switch"]
    )
    for name in TradingSwitch.Name.values:
        switches.add_metric([name], 1.0 if switch_engaged(name) else 0.0)
    yield switches
    open_orders = GaugeMetricFamily("orders_open", "Orders not in a terminal status")
    open_orders.add_metric([], float(Order.objects.open().count()))
    yield open_orders
    now = timezone.now()
    yield from _unconfirmed_gauges(now)
    overdue = GaugeMetricFamily(
        "twap_slices_overdue",
        f"Unclaimed slices of active plans more than {OVERDUE_SECONDS}s past due",
    )
    overdue.add_metric([], float(slices_overdue(now=now, seconds=OVERDUE_SECONDS).count()))
    yield overdue
    yield from _heartbeat_gauges(
        "twap_dispatchers_running",
        "run_slices processes alive (heartbeat within the last "
        f"{MISSED_BEATS * SliceDispatcher.HEARTBEAT_SECONDS:g}s)",
        "twap_dispatcher_heartbeat_age_seconds",
        "Seconds since any run_slices last reported (absent: none ever started)",
        dispatchers_alive(now=now, within=MISSED_BEATS * SliceDispatcher.HEARTBEAT_SECONDS),
        now=now,
    )
    yield from _heartbeat_gauges(
        "trade_streams_connected",
        "stream_trade_updates processes alive and connected to the broker's websocket",
        "trade_stream_heartbeat_age_seconds",
        "Seconds since any stream_trade_updates last reported (absent: none ever started)",
        trade_streams_connected(now=now, within=MISSED_BEATS * StreamConsumer.HEARTBEAT_SECONDS),
        now=now,
    )


def _unconfirmed_gauges(now: datetime) -> Iterator[GaugeMetricFamily]:
    count = GaugeMetricFamily(
        "orders_unconfirmed",
        "Orders whose arrival at the broker is unconfirmed (TWAP slices waiting excluded)",
        labels=["status"],
    )
    oldest = GaugeMetricFamily(
        "orders_unconfirmed_oldest_age_seconds",
        "Seconds since the oldest of them was (maybe) sent; 0 when there is none",
        labels=["status"],
    )
    for status, (n, age) in orders_unconfirmed(now=now).items():
        count.add_metric([status], float(n))
        oldest.add_metric([status], age)
    yield count
    yield oldest


def _heartbeat_gauges(
    alive_name: str,
    alive_help: str,
    age_name: str,
    age_help: str,
    summary: tuple[int, datetime | None],
    *,
    now: datetime,
) -> Iterator[GaugeMetricFamily]:
    alive, newest = summary
    running = GaugeMetricFamily(alive_name, alive_help)
    running.add_metric([], float(alive))
    yield running
    age = GaugeMetricFamily(age_name, age_help)
    if newest is not None:
        age.add_metric([], max((now - newest).total_seconds(), 0.0))
    yield age
