"""Benchmark: TWAP dispatch capacity as a ratio — slices/s through two ``run_slices`` against
a raw alpaca-py submit loop to the same paper broker, in the same run — and the dispatchers'
CPU per slice (issue 14, point 8).

    .venv/bin/python bench/twap_capacity.py [--slices 500] [--dispatchers 2]
        [--database-url postgres://...] [--json]

Absolute seconds did not carry from one 2-core machine to another (docs/twap.md), so this
publishes what does: how close the dispatchers come to what alpaca-py alone gets out of the
same broker on the same machine, and what one slice costs the dispatcher in CPU time.

1. Baseline: ``--slices`` limit orders submitted with alpaca-py's ``submit_order`` straight to
   the broker, as fast as it answers, from as many threads as the dispatchers have senders.
2. plans of 60 slices, one a second (through the service, as the API makes them), started a
   minute before, ``--slices`` slices in all: every slice is due, so the dispatchers face a
   backlog and run flat out; two ``run_slices --until-idle`` processes send them (their
   start closes the gate, then the startup reconciliation a job cluster would run opens it).
Rates come from the broker's own request log: submits / (last arrival - first arrival).
Dispatcher CPU is each process's CPU time from its registration to its exit (its Django start
left out), summed, divided by the slices sent.

Exit status 0 only when every slice reached the broker exactly once and nothing is pending.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import harness

GOAL_RATIO = 0.5
SLICES_PER_PLAN = 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=600, help="rounded up to whole plans of 60")
    parser.add_argument("--dispatchers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="sender threads per dispatcher")
    parser.add_argument("--database-url", default=harness.DEFAULT_DATABASE_URL)
    parser.add_argument("--profile", metavar="FILE", help="cProfile the first dispatcher into FILE")
    parser.add_argument("--json", action="store_true", help="figures as JSON on the last line")
    args = parser.parse_args()

    harness.ensure_database(args.database_url)
    broker_port = harness.free_port()
    env = harness.bench_env(
        args.database_url,
        broker_port,
        MISFIRE_GRACE_SECONDS="3600",  # overdue slices are sent, not moved or failed
        TWAP_DISPATCH_RETRY_SECONDS="0.2",
    )
    harness.django_setup(env)
    broker, control = harness.start_paperbroker(env, broker_port)
    try:
        figures = measure(args, env, control)
    finally:
        harness.stop(broker)
    figures.update(harness.machine())
    print_report(figures)
    if args.json:
        print(json.dumps(figures))
    return 0 if figures["ok"] else 1


def arrivals(control: Any) -> list[datetime]:
    """Arrival times of the submits the broker logged since its log was last cleared."""
    posts = control.requests(method="POST", path="/v2/orders")
    return [datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00")) for p in posts]


def rate_of(times: list[datetime]) -> float:
    span = (max(times) - min(times)).total_seconds()
    return (len(times) - 1) / span if span > 0 else float("nan")


def baseline(args: argparse.Namespace, control: Any) -> dict[str, Any]:
    raw = harness.RawAlpaca(control.base_url)
    threads = args.dispatchers * args.workers
    harness.paced(1000, 20, lambda i: raw.submit(**harness.order_terms(i)) and None)  # warm
    control.clear_requests()
    cpu = time.process_time()
    run = harness.paced(
        10**6, args.slices, lambda i: raw.submit(**harness.order_terms(i)) and None, threads=threads
    )
    cpu = time.process_time() - cpu
    times = arrivals(control)
    return {
        "raw_orders": len(run.latencies),
        "raw_failures": len(run.failures),
        "raw_threads": threads,
        "raw_rate": round(rate_of(times), 1),
        "raw_cpu_ms_per_order": round(cpu / max(1, len(run.latencies)) * 1000, 2),
    }


def make_plans(n: int) -> datetime:
    """Plans of SLICES_PER_PLAN slices, n slices in all (rounded up), all of them due."""
    from django.utils import timezone

    from orders.controls import trading_switches_ensure
    from orders.models import DispatcherRun, Order, Position, RiskLimit, SlicingPlan, Strategy
    from orders.plans import plan_create
    from orders.risk import OrderIntent
    from orders.strategies import strategy_create
    from reconciliation.engine import reconciliation_run
    from reconciliation.models import OrphanOrder, Quarantine

    Order.objects.all().delete()
    SlicingPlan.objects.all().delete()
    Position.objects.all().delete()
    DispatcherRun.objects.all().delete()
    Quarantine.objects.all().delete()
    OrphanOrder.objects.all().delete()
    trading_switches_ensure()
    RiskLimit.objects.update_or_create(
        symbol="*",
        defaults={"max_order_qty": 10**6, "max_order_notional": 10**9, "max_position_qty": 10**9},
    )
    if not Strategy.objects.filter(pk="bench").exists():
        strategy_create(strategy_id="bench", actor="bench")
    assert reconciliation_run(kind="startup").succeeded, "reconciliation failed"
    # Plans of one slice a second for a minute, started a minute ago: every slice is overdue
    # (inside the grace), so the dispatchers start with the whole backlog.
    start = timezone.now() - timedelta(seconds=61)
    for i in range((n + SLICES_PER_PLAN - 1) // SLICES_PER_PLAN):
        terms = harness.order_terms(i)
        intent = OrderIntent(
            strategy_id="bench",
            symbol=terms["symbol"],
            side="buy",
            qty=SLICES_PER_PLAN * (1 + i),  # distinct plans, whole shares per slice
            order_type="limit",
            time_in_force="day",
            limit_price=Decimal(terms["limit_price"]),
        )
        plan_create(
            request=intent, duration_minutes=1, interval_seconds=1, actor="bench", now=start
        )
    return start


def dispatch(args: argparse.Namespace, env: dict[str, str], control: Any) -> dict[str, Any]:
    from orders.models import DispatcherRun, Order
    from paperbroker.testing import wait_until
    from reconciliation.engine import reconciliation_run

    harness.reset_broker(control)  # the baseline's orders would be orphans
    make_plans(args.slices)
    control.clear_requests()
    command = ["run_slices", "--until-idle", "--workers", str(args.workers)]
    procs = []
    for n in range(args.dispatchers):
        profile = ["-m", "cProfile", "-o", args.profile] if args.profile and n == 0 else []
        argv = [harness.MANAGE[0], *profile, harness.MANAGE[1], *command]
        procs.append(
            subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
    try:
        wait_until(
            lambda: DispatcherRun.objects.count() >= args.dispatchers,
            timeout=60,
            message="dispatchers did not register",
        )
        started_cpu = {p.pid: harness.cpu_seconds(p.pid) for p in procs}
        assert reconciliation_run(kind="startup").succeeded, "reconciliation failed"
        cpu = 0.0
        for p in procs:
            _, status, usage = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            cpu += usage.ru_utime + usage.ru_stime - started_cpu[p.pid]
    finally:
        harness.stop(*procs)
    times = arrivals(control)
    coids = [r["client_order_id"] for r in control.requests(method="POST", path="/v2/orders")]
    slices = Order.objects.filter(plan__isnull=False)
    sent = [c for c in coids if c]
    statuses: dict[str, int] = {}
    for status in slices.values_list("status", flat=True):
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "slices": slices.count(),
        "dispatchers": args.dispatchers,
        "workers": args.workers,
        "twap_rate": round(rate_of(times), 1),
        "dispatcher_cpu_ms_per_slice": round(cpu / max(1, len(times)) * 1000, 2),
        "duplicates": len(sent) - len(set(sent)),
        "never_sent": slices.exclude(client_order_id__in=set(sent)).count(),
        "pending": slices.filter(status="pending_new").count(),
        "statuses": statuses,
        "dispatcher_exit_codes": [p.returncode for p in procs],
    }


def measure(args: argparse.Namespace, env: dict[str, str], control: Any) -> dict[str, Any]:
    figures = {**baseline(args, control), **dispatch(args, env, control)}
    figures["ratio"] = round(figures["twap_rate"] / figures["raw_rate"], 2)
    figures["cpu_ratio"] = round(
        figures["dispatcher_cpu_ms_per_slice"] / figures["raw_cpu_ms_per_order"], 1
    )
    figures["goal_met"] = figures["ratio"] >= GOAL_RATIO
    figures["ok"] = (
        figures["duplicates"] == 0
        and figures["never_sent"] == 0
        and figures["pending"] == 0
        and figures["raw_failures"] == 0
        and all(code == 0 for code in figures["dispatcher_exit_codes"])
    )
    return figures


def print_report(f: dict[str, Any]) -> None:
    print(
        f"\nTWAP dispatch capacity, {f['cpus']} CPUs (load {f['loadavg_1m']}), "
        f"{f['slices']} slices due at once\n"
        f"  raw alpaca-py ({f['raw_threads']} threads): {f['raw_rate']} orders/s, "
        f"{f['raw_cpu_ms_per_order']} ms CPU per order\n"
        f"  {f['dispatchers']} run_slices x {f['workers']} senders: {f['twap_rate']} slices/s, "
        f"{f['dispatcher_cpu_ms_per_slice']} ms dispatcher CPU per slice\n"
        f"  ratio {f['ratio']} (goal >= {GOAL_RATIO}: {'met' if f['goal_met'] else 'NOT met'}); "
        f"CPU per slice / per raw order {f['cpu_ratio']}\n"
        f"  duplicates {f['duplicates']}, never sent {f['never_sent']}, pending {f['pending']}, "
        f"statuses {f['statuses']}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
