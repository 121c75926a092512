"""Fault soak (issue 14 point 5): many orders from several client threads while 10 % of the
broker calls fail, then reconciliation; nothing may be sent twice, nothing left unresolved,
and the API never answers 500.

    .venv/bin/python bench/fault_soak.py [--orders 1000] [--threads 6] [--seed 1] [--json]
        [--database-url postgres://postgres@127.0.0.1:5432/tradeops_bench]

The stack (bench/proof_harness.py): the paper broker, web, stream_trade_updates, qcluster and
run_slices as separate processes on one PostgreSQL database. Before the flow, the paper broker
gets five probabilistic fault rules over every /v2 call (any method), one per mode, each
taking 2 % of all calls: error500, timeout (held 5 s; TradeOps' client gives up after 3 s),
drop_response_after_commit, rate_limit and slow (1 s). ``--threads`` client threads then POST
``--orders`` random market and marketable limit orders in total (strategies alpha/beta/gamma,
five symbols, 1-30 shares, either side; a repeated draw is an idempotent repeat), and a TWAP
plan per symbol runs alongside. Afterwards the faults are cleared and ``reconcile --once``
runs until every order is settled (at most 120 s; the grace before an order the broker never
saw is failed is 5 s).

Checks: at the broker every client_order_id held at most once; no order non-terminal (or
"filled" without being held at the broker) after the grace; no HTTP 500. Figures: orders/s
of the flow, the API latency percentiles, faults injected per mode. Exit status 0 only when
the invariants hold; ``--json`` prints the figures as one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import proof_harness as harness
from bench.proof_harness import ApiClient, FlowStats, Stack

STRATEGIES = ["alpha", "beta", "gamma"]
SYMBOLS = ["AAPL", "MSFT", "TSLA", "AMZN", "NVDA"]
FAULTS = [  # mode, delay (s)
    ("error500", None),
    ("timeout", 5.0),
    ("drop_response_after_commit", None),
    ("rate_limit", 1.0),
    ("slow", 1.0),
]
SETTLE_SECONDS = 120.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = harness.bench_parser(__doc__, "fault_soak")
    parser.add_argument("--orders", type=int, default=1000, help="orders in total (1000)")
    parser.add_argument("--threads", type=int, default=6, help="client threads (4-8; 6)")
    parser.add_argument("--fault-rate", type=float, default=0.10, help="share of faulted calls")
    return parser.parse_args(argv)


def inject_faults(paper: Any, rate: float) -> None:
    """One rule per mode, each taking ``rate / 5`` of ALL calls: a rule only sees what the
    rules before it passed over, so its own chance is scaled up accordingly."""
    share = rate / len(FAULTS)
    for index, (mode, delay) in enumerate(FAULTS):
        chance = share / (1 - share * index)
        paper.add_fault("*", "/v2/*", mode, count=-1, delay=delay, probability=chance)


def place_plans(tokens: dict[str, str], web: str, stats: FlowStats) -> list[int]:
    """A TWAP plan per symbol (30 shares, one slice every 2 s for a minute)."""
    client = ApiClient([web], tokens["gamma"])
    placed = [
        harness.twap_place(client, stats, symbol=symbol, qty=30, interval_seconds=2)
        for symbol in SYMBOLS
    ]
    return [body["id"] for status, body in placed if status in (200, 201)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    harness.bootstrap(args.database_url)
    from orders.models import Order

    rng = random.Random(args.seed)
    with Stack(Path(args.workdir)) as stack:
        stack.boot(["web", "stream", "jobs", "slices"], seed=args.seed)
        tokens = harness.strategy_tokens(STRATEGIES)
        web = stack.procs["web"].url
        inject_faults(stack.paper, args.fault_rate)
        per_thread = [args.orders // args.threads] * args.threads
        for index in range(args.orders % args.threads):
            per_thread[index] += 1
        stats = [FlowStats() for _ in per_thread]
        threads = [
            threading.Thread(
                target=harness.order_flow,
                args=(
                    ApiClient([web], tokens[STRATEGIES[i % len(STRATEGIES)]]),
                    random.Random(rng.random()),
                    SYMBOLS,
                    stats[i],
                ),
                kwargs={"count": count, "max_qty": 30},
                daemon=True,  # Ctrl-C ends the script, not a client still retrying
            )
            for i, count in enumerate(per_thread)
        ]
        plan_stats = FlowStats()
        began = time.monotonic()
        for thread in threads:
            thread.start()
        plans = place_plans(tokens, web, plan_stats)
        for thread in threads:
            thread.join()
        flow_seconds = time.monotonic() - began
        log = stack.paper.requests()
        faults = Counter(r["fault"] for r in log if r["fault"])
        stack.paper.clear_faults()
        settled = harness.settle(stack.paper, timeout=SETTLE_SECONDS, interval=1.0)
        held, unresolved = settled.held, settled.unresolved
        dups = harness.duplicates(held)
        total = FlowStats()
        for one in stats:
            total.merge(one)
        client = total.to_json()
        plan_client = plan_stats.to_json()
        report = {
            "orders": args.orders,
            "threads": args.threads,
            "plans": len(plans),
            "orders_in_db": Order.objects.filter(plan__isnull=True).count(),
            "slices_in_db": Order.objects.filter(plan__isnull=False).count(),
            "broker_orders": sum(held.values()),
            "broker_calls_during_flow": len(log),
            "faults_injected": dict(sorted(faults.items())),
            "fault_share": round(sum(faults.values()) / max(1, len(log)), 3),
            "duplicates": len(dups),
            "unresolved": len(unresolved),
            "unresolved_sample": unresolved[:10],
            "resubmitted_ids": sum(1 for n in settled.posts.values() if n > 1),
            "statuses_in_db": dict(
                Counter(Order.objects.values_list("status", flat=True)).most_common()
            ),
            "flow_seconds": round(flow_seconds, 2),
            "orders_per_second": round(args.orders / flow_seconds, 1),
            "settle_seconds": round(settled.seconds, 2),
            "reconciliation": harness.reconciliation_figures(),
            "client": client,
            "http_500s": client["http_500s"] + plan_client["http_500s"],
        }
    report["invariants_hold"] = not (dups or unresolved or report["http_500s"])
    return harness.finish(report, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
