"""Benchmark (run by hand, not a test): how late do TWAP slices reach the broker when 1,000 of
them fall due within a few seconds and two ``run_slices`` dispatchers share the work?

    .venv/bin/python bench/twap_lateness.py [--slices 1000] [--window 4] [--dispatchers 2]
        [--workers N] [--database-url postgres://...] [--profile FILE]

Everything is real and separate, as in production: PostgreSQL (a dedicated database,
``tradeops_bench`` by default, created if missing), the paper broker as its own process
(``manage.py paperbroker``), and each dispatcher as its own ``manage.py run_slices`` process.
The slices belong to single-slice plans whose start times are spread evenly over ``--window``
seconds, beginning a few seconds after the dispatchers are up. Lateness is measured
independently of TradeOps: the broker's request log time of the slice's POST /v2/orders minus
the slice's scheduled time. It also checks that no client_order_id was submitted twice.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import ensure_database, free_port, percentile  # noqa: E402

SYMBOLS = ["AAPL", "MSFT", "TSLA", "AMZN", "NVDA", "META", "GOOG", "NFLX", "AMD", "INTC"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=1000)
    parser.add_argument("--window", type=float, default=4.0, help="seconds the slices span")
    parser.add_argument("--dispatchers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None, help="sender threads each")
    parser.add_argument("--lead", type=float, default=5.0, help="seconds before the first slice")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the first dispatcher into FILE")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tradeops_bench"
        ),
    )
    args = parser.parse_args()

    ensure_database(args.database_url)
    port = free_port()
    env = dict(os.environ)
    env.update(
        DATABASE_URL=args.database_url,
        PAPERBROKER_PORT=str(port),
        LIQUIDITY_CHECK_ENABLED="0",  # one bars request per symbol is not what is measured
        CIRCUIT_BREAKER_REJECTS_TO_TRIP="0",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    for key in [k for k in env if k.startswith("ALPACA_")]:
        del env[key]
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeops.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    manage = [sys.executable, str(ROOT / "manage.py")]
    broker = subprocess.Popen(
        [*manage, "paperbroker", "--port", str(port), "--no-random-walk", "--tick-seconds", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    dispatchers: list[subprocess.Popen] = []
    try:
        report = run(args, manage, env, port, dispatchers)
    finally:
        for proc in [*dispatchers, broker]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*dispatchers, broker]:
            proc.wait(timeout=30)
    print(report)


def run(
    args: argparse.Namespace,
    manage: list[str],
    env: dict[str, str],
    port: int,
    dispatchers: list[subprocess.Popen],
) -> str:
    from django.utils import timezone

    from orders.controls import trading_switches_ensure
    from orders.models import DispatcherRun, Order, RiskLimit, SlicingPlan, Strategy
    from orders.plans import plan_create
    from orders.risk import OrderIntent
    from orders.strategies import strategy_create
    from paperbroker.control import PaperControl
    from paperbroker.testing import wait_until
    from reconciliation.engine import reconciliation_run

    control = PaperControl(f"http://127.0.0.1:{port}")
    wait_until(lambda: _up(control), timeout=20, message="paper broker did not start")
    control.reset(initial_cash=10**10, random_walk=False)
    control.set_clock(is_open=True)
    Order.objects.all().delete()
    SlicingPlan.objects.all().delete()
    DispatcherRun.objects.all().delete()
    trading_switches_ensure()
    RiskLimit.objects.update_or_create(symbol="*", defaults={"max_position_qty": 10**7})
    if not Strategy.objects.filter(pk="bench").exists():
        strategy_create(strategy_id="bench", actor="bench")
    # The gate: plans are refused until a reconciliation has succeeded (a job cluster's part).
    assert reconciliation_run(kind="startup").succeeded, "reconciliation failed"

    print(f"creating {args.slices} single-slice plans...", flush=True)
    started = time.monotonic()
    # Plans are created with their (future) start, so leave time for creating them all.
    first_due = timezone.now() + timedelta(seconds=args.lead + args.slices * 0.05)
    step = timedelta(seconds=args.window / args.slices)
    for i in range(args.slices):
        intent = OrderIntent(
            strategy_id="bench",
            symbol=SYMBOLS[i % len(SYMBOLS)],
            side="buy",
            qty=1 + i // len(SYMBOLS),  # every request distinct: one plan each
            order_type="market",
            time_in_force="day",
        )
        plan_create(
            request=intent,
            duration_minutes=1,
            interval_seconds=60,
            actor="bench",
            now=first_due + i * step,
        )
    print(f"  created in {time.monotonic() - started:.1f}s", flush=True)
    spare = (first_due - timezone.now()).total_seconds()
    if spare < 1:
        return f"plan creation overran the lead time ({spare:.1f}s); raise --lead"

    workers = [] if args.workers is None else ["--workers", str(args.workers)]
    for n in range(args.dispatchers):
        profile = ["-m", "cProfile", "-o", args.profile] if args.profile and n == 0 else []
        argv = [manage[0], *profile, *manage[1:], "run_slices", "--until-idle", *workers]
        dispatchers.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True))
    # Each dispatcher's start closes the gate until the startup reconciliation that a job
    # cluster would run; run it here once both are registered (measured lateness includes it).
    wait_until(
        lambda: DispatcherRun.objects.count() >= args.dispatchers,
        timeout=30,
        message="dispatchers did not register",
    )
    assert reconciliation_run(kind="startup").succeeded, "reconciliation failed"
    outputs = [proc.communicate(timeout=args.window + spare + 600)[0] for proc in dispatchers]

    posts = control.requests(method="POST", path="/v2/orders")
    arrived: dict[str, datetime] = {}
    duplicates = 0
    for entry in posts:
        coid = entry["client_order_id"]
        if coid in arrived:
            duplicates += 1
            continue
        arrived[coid] = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
    slices = list(
        Order.objects.filter(plan__strategy_id="bench").values_list(
            "client_order_id", "scheduled_time", "status"
        )
    )
    lateness = [(arrived[c] - due).total_seconds() for c, due, _ in slices if c in arrived]
    missing = len(slices) - len(lateness)
    statuses: dict[str, int] = {}
    for _, _, status in slices:
        statuses[status] = statuses.get(status, 0) + 1
    lines = [
        "",
        f"TWAP dispatch benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M}Z, {os.cpu_count()} CPUs",
        f"  {len(slices)} slices due within {args.window:.0f}s, {args.dispatchers} dispatchers"
        f" ({args.workers or 'default'} sender threads each), PostgreSQL, paper broker process",
        f"  lateness (broker arrival - scheduled): p50 {percentile(lateness, 50):.3f}s  "
        f"p90 {percentile(lateness, 90):.3f}s  p99 {percentile(lateness, 99):.3f}s  "
        f"max {max(lateness):.3f}s  mean {statistics.fmean(lateness):.3f}s",
        f"  submits at the broker: {len(posts)} for {len(arrived)} ids; duplicates {duplicates}; "
        f"never submitted {missing}",
        f"  final statuses: {statuses}",
    ]
    lines += [f"  dispatcher {i}: {out.strip().splitlines()[-1]}" for i, out in enumerate(outputs)]
    return "\n".join(lines)


def _up(control: Any) -> bool:
    try:
        control.state(include_orders=False)
    except Exception:
        return False
    return True


if __name__ == "__main__":
    main()
