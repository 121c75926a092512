"""Crash trials (issue 14 point 4): SIGKILL one process at a random moment while orders and a
TWAP plan are in flight, restart it, let reconciliation and recovery run, and check at the
paper broker that nothing was sent twice and nothing was left hanging.

    .venv/bin/python bench/crash_trials.py [--trials 100] [--seed 1] [--json]
        [--database-url postgres://postgres@127.0.0.1:5432/tradeops_bench]

One stack for all trials (bench/proof_harness.py): the paper broker, web, stream_trade_updates,
qcluster and run_slices as separate processes on one PostgreSQL database. Each trial:
  1. a client thread POSTs random market and marketable limit orders (retrying, same body,
     when the web does not answer) and a TWAP plan of 60 one-second slices is placed;
  2. after a random 0.2-4 s, one of web / run_slices / qcluster / stream_trade_updates is
     SIGKILLed and restarted (the harness waits for its readiness check);
  3. the client stops; for a restarted order-executing process the harness waits until the
     job cluster's startup reconciliation has opened the gate again (recovery of the plan's
     slices follows it);
  4. the plan is canceled through the API (DELETE /api/v1/plans/{id}/slices: unsent slices
     end canceled), then ``reconcile --once`` runs until every order is settled (at most
     60 s; the grace before an order the broker never saw is failed is 5 s here);
  5. checks AT THE BROKER (GET /_paper/state): every client_order_id held at most once; every
     slice of the plan held exactly once or ended (terminal) without reaching the broker; no
     order non-terminal, none "filled" that the broker does not hold, none in another status
     than the broker's.
Exit status 0 only when every trial held every invariant. ``--json`` prints the figures as one
JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import proof_harness as harness
from bench.proof_harness import ApiClient, FlowStats, Stack, percentile

VICTIMS = ["web", "slices", "jobs", "stream"]  # demo CHILDREN names
SYMBOLS = ["AAPL", "MSFT", "TSLA"]
SETTLE_SECONDS = 60.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = harness.bench_parser(__doc__, "crash_trials")
    parser.add_argument("--trials", type=int, default=100, help="how many kills (default 100)")
    parser.add_argument(
        "--cycle",
        action="store_true",
        help="kill web, run_slices, qcluster, stream_trade_updates in turn (not at random)",
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="start no new trial after this long (the figures say how many ran)",
    )
    return parser.parse_args(argv)


def slice_problems(plan_id: int, held: Any) -> list[dict[str, Any]]:
    """Slices neither held once at the broker nor ended without reaching it."""
    from orders.models import Order
    from orders.status import TERMINAL_STATUSES

    bad = []
    for coid, status in Order.objects.filter(plan_id=plan_id).values_list(
        "client_order_id", "status"
    ):
        at_broker = held[coid]
        ended_unsent = at_broker == 0 and status in TERMINAL_STATUSES and status != "filled"
        if at_broker == 1 or ended_unsent:
            continue
        bad.append({"client_order_id": coid, "status": status, "at_broker": at_broker})
    return bad


def trial(
    stack: Stack, rng: random.Random, number: int, tokens: dict[str, str], victim: str
) -> dict[str, Any]:
    from django.utils import timezone

    stats = FlowStats()
    stop = threading.Event()
    urls = [stack.procs["web"].url]
    flow_client = ApiClient(urls, tokens["alpha"])
    flow = threading.Thread(
        target=harness.order_flow,
        args=(flow_client, random.Random(rng.random()), SYMBOLS, stats),
        kwargs={"stop": stop},
        daemon=True,  # Ctrl-C ends the script, not a client still retrying
    )
    began = time.monotonic()
    flow.start()
    ops = ApiClient(urls, tokens["twap"])
    plan_body = {
        "symbol": rng.choice(SYMBOLS),
        "side": rng.choice(["buy", "sell"]),
        "qty": 60 + number,  # a new plan each trial (plans are idempotent per day)
        "type": "market",
        "time_in_force": "day",
        "duration_minutes": 1,
        "interval_seconds": 1,
    }
    status, plan, _ = ops.call("POST", "/api/v1/orders/slice", plan_body)
    if status not in (200, 201):
        raise RuntimeError(f"trial {number}: the TWAP plan was refused: {status} {plan}")
    time.sleep(rng.uniform(0.2, 4.0))  # the random moment of the kill (not a synchronisation)
    killed_at = timezone.now()
    restart = stack.restart(victim)
    stop.set()
    flow.join()
    recovery = 0.0
    if victim != "web":  # an order-executing process closed the gate when it started again
        recovery = stack.wait_gate_open(killed_at)
    status, body, _ = ops.call("DELETE", f"/api/v1/plans/{plan['id']}/slices")
    if status >= 500:
        raise RuntimeError(f"trial {number}: canceling the plan answered {status} {body}")
    settled = harness.settle(stack.paper, timeout=SETTLE_SECONDS)
    held, unresolved, dups = settled.held, settled.unresolved, harness.duplicates(settled.held)
    problems = slice_problems(plan["id"], held)
    return {
        "trial": number,
        "victim": victim,
        "restart_seconds": round(restart, 2),
        "recovery_seconds": round(recovery, 2),
        "settle_seconds": round(settled.seconds, 2),
        "trial_seconds": round(time.monotonic() - began, 2),
        "duplicates": dups,
        "unresolved": unresolved,
        "slice_problems": problems,
        "flow": stats,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    harness.bootstrap(args.database_url)

    rng = random.Random(args.seed)
    results: list[dict[str, Any]] = []
    flow = FlowStats()
    with Stack(Path(args.workdir)) as stack:
        stack.boot(["web", "stream", "jobs", "slices"], seed=args.seed)
        tokens = harness.strategy_tokens(["alpha", "twap"])
        deadline = time.monotonic() + 60 * (args.max_minutes or float("inf"))
        for number in range(args.trials):
            if time.monotonic() > deadline:
                break
            victim = VICTIMS[number % len(VICTIMS)] if args.cycle else rng.choice(VICTIMS)
            result = trial(stack, rng, number, tokens, victim)
            flow.merge(result.pop("flow"))
            results.append(result)
            ok = not (result["duplicates"] or result["unresolved"] or result["slice_problems"])
            print(
                f"trial {number + 1}/{args.trials}: killed {result['victim']:6} "
                f"restart {result['restart_seconds']:5.1f} s, recovery "
                f"{result['recovery_seconds']:5.1f} s, settled {result['settle_seconds']:5.1f} s"
                f" -> {'ok' if ok else 'VIOLATED ' + json.dumps(result)}",
                flush=True,
            )
        held, posts = harness.broker_counts(stack.paper)
        statuses = harness.broker_statuses(stack.paper)
        kills = stack.kills()
    report = summary(results, flow, held, posts, statuses, kills)
    return harness.finish(report, as_json=args.json)


def summary(
    results: list[dict[str, Any]],
    flow: FlowStats,
    held: Any,
    posts: Any,
    statuses: dict[str, str],
    kills: dict,
) -> dict[str, Any]:
    def stats(key: str) -> dict[str, float]:
        values = [r[key] for r in results]
        return {"p50": percentile(values, 50) if values else 0.0, "max": max(values, default=0.0)}

    dups = harness.duplicates(held)
    unresolved = harness.unresolved_orders(held, statuses)
    slices_bad = sum(len(r["slice_problems"]) for r in results)
    per_trial_bad = sum(1 for r in results if r["duplicates"] or r["unresolved"])
    from orders.models import Order

    return {
        "trials": len(results),
        "kills": kills,
        "orders": Order.objects.filter(plan__isnull=True).count(),
        "slices": Order.objects.filter(plan__isnull=False).count(),
        "broker_orders": sum(held.values()),
        "duplicates": len(dups),
        "unresolved": len(unresolved),
        "slice_problems": slices_bad,
        "trials_violated": per_trial_bad,
        "resubmitted_ids": sum(1 for n in posts.values() if n > 1),
        "timings_seconds": {
            "restart": stats("restart_seconds"),
            "recovery": stats("recovery_seconds"),
            "settle": stats("settle_seconds"),
            "trial": stats("trial_seconds"),
        },
        "reconciliation": harness.reconciliation_figures(),
        "client": flow.to_json(),
        "invariants_hold": not (dups or unresolved or slices_bad or per_trial_bad)
        and flow.to_json()["http_500s"] == 0,
    }


if __name__ == "__main__":
    sys.exit(main())
