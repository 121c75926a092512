"""Benchmark: feature hydration, shadow validation and the signal API (run by hand, never in
the suite; figures go to docs/signals.md).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench REDIS_URL=redis://127.0.0.1:6379/14 \\
        .venv/bin/python bench/signals.py [--symbols 500] [--days 252] [--json]

Creates a throwaway database (``test_<name>``) and starts the paper broker in-process; syncs
the bars of SYMBOLS synthetic symbols (setup, not timed), registers and activates a model, then
measures:

1. hydration of SYMBOLS x DAYS trading days from the stored bars into Redis (the goal: <= 5 s),
   with its parts: loading the bars, the pure feature computation, the Redis write; the write
   is compared with a raw redis-py pipeline of the same payload (ratio, same run);
2. shadow validation: the pure metrics on 100 samples (10 dates x 10 names), and the whole
   django-q2 job body (two model loads with sha256, the sample from the cache, scoring, the
   verdict and its row) at SHADOW_SAMPLE_COUNT=100;
3. GET /api/v1/signals on a warm cache: p50/p99 over REQUESTS calls (Django's test client, in
   process: the view stack without a network hop).

Only this benchmark's Redis keys are touched (the feature cache's prefix), never FLUSHDB.
Exit status 0 only when the invariants hold (every symbol hydrated, every answer 200, the
validation finished). ``--json`` prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeops.settings")
os.environ.setdefault("ALPACA_RETRY_WAIT_SECONDS", "0")

import django

django.setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402


def symbols_for(count: int) -> list[str]:
    """Synthetic tickers BAAA, BAAB, ... (the paper broker makes bars for any name)."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [
        "B" + letters[i // 676 % 26] + letters[i // 26 % 26] + letters[i % 26] for i in range(count)
    ]


def percentile(values: list[float], pct: float) -> float:
    return float(np.percentile(np.array(values), pct))


def setup(universe: list[str], days: int, log) -> None:
    from marketdata.bars import bars_sync
    from signals.features import HISTORY_BARS

    settings.ALPACA_HTTP_TIMEOUT_SECONDS = 120  # the paper broker builds 10,000 bars per page
    started = time.perf_counter()
    report = bars_sync(symbols=universe, days=days + HISTORY_BARS - 1)
    assert not report.failed, report.summary()
    log(f"setup: {report.bars_written:,} bars synced in {time.perf_counter() - started:.1f}s")


def activate(name: str, seed: int):
    from signals.models import ModelVersion
    from signals.promotion import _activate_unvalidated
    from signals.training import model_train

    model = model_train(name=name, symbols=settings.SIGNAL_UNIVERSE[:50], actor="bench", seed=seed)
    if not ModelVersion.objects.filter(status="active").exists():
        _activate_unvalidated(model, actor="bench", reason="benchmark baseline")
    return model


def bench_hydration(universe: list[str], days: int) -> dict:
    import redis

    from signals.cache import cache_clear, encode_row
    from signals.features import FEATURE_NAMES, FEATURE_SET_VERSION
    from signals.hydration import hydration_run

    cache_clear(version=FEATURE_SET_VERSION)
    started = time.perf_counter()
    run = hydration_run(trigger="manual", days=days, symbols=universe)
    total = time.perf_counter() - started
    assert run.status == "succeeded", run.reason
    # Baseline: the same number of entries through a raw pipelined HSET, no features.
    client = redis.Redis.from_url(settings.REDIS_URL)
    row = encode_row(np.linspace(0.1, 0.9, len(FEATURE_NAMES)))
    t0 = time.perf_counter()
    for start in range(0, days, 32):
        pipe = client.pipeline(transaction=False)
        for day in range(start, min(start + 32, days)):
            pipe.hset(f"bench:raw:{day}", mapping=dict.fromkeys(universe, row))
        pipe.execute()
    raw = time.perf_counter() - t0
    client.delete(*[f"bench:raw:{d}" for d in range(days)])
    return {
        "symbols": len(universe),
        "days": days,
        "entries": run.symbols_ok * days,
        "symbols_ok": run.symbols_ok,
        "seconds_total": round(total, 3),
        "seconds_bars": round(run.bars_seconds or 0, 3),
        "seconds_features": round(run.compute_seconds or 0, 3),
        "seconds_redis_write": round(run.write_seconds or 0, 3),
        "seconds_raw_redis_baseline": round(raw, 3),
        "write_vs_raw_ratio": round((run.write_seconds or 0) / raw, 2) if raw else None,
        "goal_seconds": 5.0,
    }


def bench_shadow(candidate) -> dict:
    from signals.models import ShadowValidation
    from signals.promotion import model_promote, shadow_validation_run
    from signals.shadow import Thresholds, shadow_compare

    rng = np.random.default_rng(1)
    dates = [f"d{d}" for d in range(10) for _ in range(10)]
    old = rng.normal(size=100)
    new = old * 3 + rng.normal(scale=0.1, size=100)
    gate = Thresholds(0.5, 0.5)
    loops = 200
    t0 = time.perf_counter()
    for _ in range(loops):
        shadow_compare(dates=dates, old=old, new=new, thresholds=gate)
    pure = (time.perf_counter() - t0) / loops
    settings.SHADOW_SAMPLE_COUNT = 100
    from django_q.conf import Conf

    Conf.SYNC = False  # queue the job; run its body here, timed
    validation = model_promote(model=candidate, actor="bench", reason="bench promotion")
    from django_q.models import OrmQ

    OrmQ.objects.all().delete()
    t0 = time.perf_counter()
    done = shadow_validation_run(validation.pk)
    job = time.perf_counter() - t0
    assert done.status == ShadowValidation.Status.FINISHED, done.error_text
    return {
        "pure_metrics_100_samples_ms": round(pure * 1000, 3),
        "job_seconds": round(job, 3),
        "job_samples": done.n_samples,
        "job_dates": done.n_dates,
        "job_outcome": done.outcome,
        "job_spearman_mean": done.spearman_mean,
        "job_divergence": done.divergence,
    }


def bench_api(requests_count: int) -> dict:
    from rest_framework.test import APIClient

    from orders.strategies import strategy_create, strategy_token_issue

    strategy = strategy_create(strategy_id="bench", actor="bench")
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Token {strategy_token_issue(strategy=strategy, actor='bench')}"
    )
    for _ in range(5):  # warm: model loaded, calendar memo filled
        assert client.get("/api/v1/signals").status_code == 200
    latencies = []
    for _ in range(requests_count):
        t0 = time.perf_counter()
        answer = client.get("/api/v1/signals")
        latencies.append((time.perf_counter() - t0) * 1000)
        assert answer.status_code == 200, answer.content[:200]
    return {
        "requests": requests_count,
        "names": len(answer.json()["signals"]),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=500, help="Universe size (500)")
    parser.add_argument("--days", type=int, default=252, help="Trading days hydrated (252)")
    parser.add_argument("--requests", type=int, default=300, help="API calls measured (300)")
    parser.add_argument("--json", action="store_true", help="Print one JSON object last")
    args = parser.parse_args()
    if not settings.REDIS_URL:
        parser.error("set REDIS_URL (a Redis database this benchmark may write to)")

    def log(text: str) -> None:
        print(text, file=sys.stderr)

    from paperbroker.testing import start_test_server
    from signals import serving
    from signals.cache import cache_clear
    from signals.features import FEATURE_SET_VERSION

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    server = start_test_server()
    settings.ALPACA_BASE_URL = settings.ALPACA_DATA_URL = server.url
    settings.MODEL_DIR = Path(settings.VAR_DIR) / "bench-models"
    universe = symbols_for(args.symbols)
    settings.SIGNAL_UNIVERSE = universe
    settings.MODEL_RELOAD_SECONDS = 3600
    result: dict = {"benchmark": "signals", "ok": False}
    try:
        setup(universe, args.days, log)
        activate("bench", seed=7)
        result["hydration"] = bench_hydration(universe, args.days)
        log(f"hydration: {json.dumps(result['hydration'])}")
        serving._serving.reset()
        result["api"] = bench_api(args.requests)
        log(f"api: {json.dumps(result['api'])}")
        candidate = activate("bench", seed=8)
        result["shadow"] = bench_shadow(candidate)
        log(f"shadow: {json.dumps(result['shadow'])}")
        result["ok"] = result["hydration"]["symbols_ok"] == len(universe) and result["shadow"][
            "job_outcome"
        ] in ("passed", "rejected")
        result["hydration_goal_met"] = result["hydration"]["seconds_total"] <= 5.0
    finally:
        cache_clear(version=FEATURE_SET_VERSION)
        server.stop()
        connection.creation.destroy_test_db(old_name, verbosity=0)
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
