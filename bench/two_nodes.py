"""Two nodes (issue 14 point 7): two of every TradeOps process on one PostgreSQL database
against one paper broker, under order flow and TWAP plans: no slice dispatched twice, never two
reconciliations at once, and both webs tell the same gate.

    .venv/bin/python bench/two_nodes.py [--seconds 60] [--threads 4] [--seed 1] [--json]
        [--database-url postgres://postgres@127.0.0.1:5432/tradeops_bench]

The stack (bench/proof_harness.py): the paper broker, two webs, two qclusters and two run_slices
(each pair started at the same moment, as two nodes booting), plus stream_trade_updates. Then,
for ``--seconds``: client threads POST random orders alternately to both webs; three TWAP plans
(one per symbol, a slice a second for a minute) are placed through both webs; a watcher asks
both webs for the gate (GET /api/v1/reconciliation/status) every 0.3 s; and half-way, one
node's run_slices and qcluster are SIGKILLed and restarted (closing the gate until a
reconciliation, which both clusters race to run). Afterwards ``reconcile --once`` settles
everything (at most 120 s).

Checks: at the broker every client_order_id held at most once and every slice POSTed at most
once (no double dispatch); the reconciliation runs recorded in the database never overlap in
time; one schedule per name; a gate answer of one web never differs from the other web's answer
taken between two equal answers of the first (consistent); no order left unresolved; no
HTTP 500. Exit status 0 only when all hold; ``--json`` prints the figures as one JSON object on
the last line.
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

SYMBOLS = ["AAPL", "MSFT", "TSLA"]
SETTLE_SECONDS = 120.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = harness.bench_parser(__doc__, "two_nodes")
    parser.add_argument("--seconds", type=float, default=60.0, help="order flow (60 s)")
    parser.add_argument("--threads", type=int, default=4, help="client threads (4)")
    return parser.parse_args(argv)


class GateWatcher(threading.Thread):
    """Asks web A, web B, web A again for the gate; B's answer must equal A's whenever A's two
    answers around it agree (the gate did not move meanwhile)."""

    def __init__(self, urls: list[str], token: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.clients = [ApiClient([url], token) for url in urls]
        self.stop = stop
        self.samples = 0
        self.inconsistent: list[dict[str, Any]] = []
        self.seen: Counter[str] = Counter()
        self.stats = FlowStats()

    def gate(self, client: ApiClient) -> Any:
        status, payload, took = client.call("GET", "/api/v1/reconciliation/status")
        self.stats.add(status, payload, took)
        if status != 200:
            return f"http {status}"
        return payload["gate"]["open"]

    def run(self) -> None:
        a, b = self.clients
        while not self.stop.is_set():
            first, other, again = self.gate(a), self.gate(b), self.gate(a)
            self.samples += 1
            self.seen[f"open={first}"] += 1
            if first == again and other != first:
                self.inconsistent.append({"a": first, "b": other})
            self.stop.wait(0.3)


def overlapping_runs() -> list[tuple[int, int]]:
    """Pairs of reconciliation runs whose [started_at, finished_at] intervals intersect."""
    from reconciliation.models import ReconciliationRun

    runs = list(
        ReconciliationRun.objects.exclude(finished_at=None)
        .order_by("started_at")
        .values_list("pk", "started_at", "finished_at")
    )
    overlaps = []
    latest: tuple[int, Any] | None = None  # the run that ends last so far
    for pk, started, finished in runs:
        if latest is not None and started < latest[1]:
            overlaps.append((latest[0], pk))
        if latest is None or finished > latest[1]:
            latest = (pk, finished)
    return overlaps


def duplicate_schedules() -> dict[str, int]:
    from django_q.models import Schedule

    names = Counter(Schedule.objects.values_list("name", flat=True))
    return {name: n for name, n in names.items() if n > 1}


def place_plans(webs: list[str], token: str, stats: FlowStats) -> list[int]:
    """A TWAP plan per symbol (120 shares, a slice a second), through both webs in turn."""
    plans = []
    for index, symbol in enumerate(SYMBOLS):
        client = ApiClient([webs[index % len(webs)]], token)
        status, body = harness.twap_place(client, stats, symbol=symbol, qty=120, interval_seconds=1)
        if status not in (200, 201):
            raise RuntimeError(f"the TWAP plan was refused: {status} {body}")
        plans.append(body["id"])
    return plans


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    harness.bootstrap(args.database_url)
    from django.utils import timezone

    from orders.models import Order
    from reconciliation.models import ReconciliationRun

    rng = random.Random(args.seed)
    with Stack(Path(args.workdir)) as stack:
        # Each pair started at the same moment: two nodes booting together.
        stack.boot(
            ["web", "web2"], ["stream"], ["jobs", "jobs2"], ["slices", "slices2"], seed=args.seed
        )
        tokens = harness.strategy_tokens(["alpha", "beta", "twap"])
        webs = stack.web_urls()
        stop = threading.Event()
        watcher = GateWatcher(webs, tokens["alpha"], stop)
        stats = [FlowStats() for _ in range(args.threads)]
        threads = [
            threading.Thread(
                target=harness.order_flow,
                args=(
                    ApiClient(webs, tokens[("alpha", "beta")[i % 2]]),
                    random.Random(rng.random()),
                    SYMBOLS,
                    stats[i],
                ),
                kwargs={"stop": stop},
                daemon=True,  # Ctrl-C ends the script, not a client still retrying
            )
            for i in range(args.threads)
        ]
        plan_stats = FlowStats()
        began = time.monotonic()
        watcher.start()
        for thread in threads:
            thread.start()
        plans = place_plans(webs, tokens["twap"], plan_stats)
        time.sleep(args.seconds / 2)  # half-way (a choice of moment, not a synchronisation)
        killed_at = timezone.now()
        stack.kill("slices2")
        stack.kill("jobs2")
        stack.start("jobs2")
        stack.start("slices2")
        recovery = stack.wait_gate_open(killed_at)
        left = args.seconds - (time.monotonic() - began)
        if left > 0:
            stop.wait(left)
        stop.set()
        for thread in [*threads, watcher]:
            thread.join()
        flow_seconds = time.monotonic() - began
        settled = harness.settle(stack.paper, timeout=SETTLE_SECONDS, interval=1.0)
        held, posts, unresolved = settled.held, settled.posts, settled.unresolved
        slice_ids = set(
            Order.objects.filter(plan_id__in=plans).values_list("client_order_id", flat=True)
        )
        double_dispatch = sorted(c for c in slice_ids if posts[c] > 1)
        total = FlowStats()
        for one in [*stats, plan_stats]:
            total.merge(one)
        client = total.to_json()
        report = {
            "seconds": args.seconds,
            "webs": 2,
            "qclusters": 2,
            "dispatchers": 2,
            "orders_in_db": Order.objects.filter(plan__isnull=True).count(),
            "slices": len(slice_ids),
            "slices_sent": sum(1 for c in slice_ids if held[c]),
            "broker_orders": sum(held.values()),
            "duplicates": len(harness.duplicates(held)),
            "double_dispatch": len(double_dispatch),
            "reconciliation_runs": ReconciliationRun.objects.exclude(finished_at=None).count(),
            "overlapping_runs": overlapping_runs(),
            "duplicate_schedules": duplicate_schedules(),
            "gate_samples": watcher.samples,
            "gate_seen": dict(watcher.seen),
            "gate_inconsistent": len(watcher.inconsistent),
            "recovery_seconds": round(recovery, 2),
            "unresolved": len(unresolved),
            "unresolved_sample": unresolved[:10],
            "flow_seconds": round(flow_seconds, 2),
            "settle_seconds": round(settled.seconds, 2),
            "reconciliation": harness.reconciliation_figures(),
            "client": client,
            "http_500s": client["http_500s"] + watcher.stats.to_json()["http_500s"],
        }
    report["invariants_hold"] = not (
        report["duplicates"]
        or report["double_dispatch"]
        or report["overlapping_runs"]
        or report["duplicate_schedules"]
        or report["gate_inconsistent"]
        or report["unresolved"]
        or report["http_500s"]
    )
    return harness.finish(report, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
