"""Hydration and readiness through the real interfaces: cold start (503 until warm, /health
degraded, the order path's /ready not held back), the first answer equal to a warm process's,
per-symbol failures, trading days only, a Redis restart refilled, Redis down, the cluster-start
hook, the daily schedule and the command."""

from __future__ import annotations

import contextlib
import socket
import subprocess
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from typing import Any

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from marketdata.bars import bars_frame
from signals.features import feature_matrix, features_compute
from signals.hydration import hydration_run
from signals.models import HydrationRun, ModelVersion
from signals.registry import model_load
from signals.serving import rank_signals
from tests.helpers import token_client, wait_for
from tests.signals.conftest import UNIVERSE
from tests.signals.support import activate_queued, queued_tasks, run_queued, train

pytestmark = pytest.mark.django_db


@pytest.fixture
def active(stored_bars: Any) -> ModelVersion:
    """A model active, its hydration queued but not run: the cold start."""
    return activate_queued(train("alpha"))


def signals(**query: Any) -> Any:
    return token_client("alpha").get("/api/v1/signals", query)


def warm_process_answer(model: ModelVersion, day: date) -> list[dict]:
    """What a long-running process that computed features over the whole stored history
    (the training path) would answer for ``day``."""
    bars = bars_frame(symbols=UNIVERSE, since=date(2000, 1, 1), until=day)
    rows = features_compute(bars)
    rows = rows[rows["date"] == day].reset_index(drop=True)
    scores = model_load(model).predict(feature_matrix(rows))
    return rank_signals(rows["symbol"].tolist(), scores, top_n=2, bottom_n=2)


def test_cold_start_is_503_until_hydrated_then_equals_a_warm_process(
    active: ModelVersion, client: Any, settings: Any
) -> None:
    cold = signals()
    assert cold.status_code == 503
    assert cold.json()["error"]["code"] == "signals_not_ready"
    assert cold["Retry-After"] == str(settings.SIGNALS_RETRY_AFTER_SECONDS)
    ready = client.get("/ready/signals")
    assert ready.status_code == 503 and ready.json()["reason"] == "feature cache not hydrated yet"
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["checks"]["signals"]["status"] == "degraded"
    assert health.json()["checks"]["signals"]["ready"] is True  # /ready is not held back
    [(func, result)] = run_queued()  # the hydration the activation asked for
    assert (func, result["status"]) == ("signals.tasks.hydrate", "succeeded")
    assert client.get("/ready/signals").status_code == 200
    assert client.get("/health").json()["checks"]["signals"]["status"] == "ok"
    answer = signals()
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    run = HydrationRun.objects.get(status="succeeded")
    assert body["as_of"] == run.as_of.isoformat() and body["missing"] == []
    expected = warm_process_answer(active, run.as_of)
    assert body["signals"] == expected  # exactly: same scores, same ranks
    # a longer hydration (more history in the cache) answers the same for the same date
    settings.FEATURE_HYDRATION_DAYS = 40
    assert hydration_run(trigger="manual").status == "succeeded"
    assert signals(date=run.as_of.isoformat()).json()["signals"] == expected
    older = date.fromisoformat(HydrationRun.objects.first().dates[0])
    assert signals(date=older.isoformat()).json()["signals"] == warm_process_answer(active, older)


def test_a_symbol_without_bars_is_recorded_and_the_rest_serve(
    active: ModelVersion, paper: Any, settings: Any, client: Any
) -> None:
    paper.set_symbol("NEWCO", listed=(datetime.now(UTC).date() - timedelta(days=10)).isoformat())
    paper.set_symbol("ZLATE", listed="2099-01-02")
    settings.SIGNAL_UNIVERSE = [*UNIVERSE, "NEWCO", "ZLATE"]
    run = hydration_run(trigger="manual")
    assert (run.status, run.symbols_ok, run.symbols_failed) == ("succeeded", 6, 2)
    assert run.failures["NEWCO"].startswith("only ") and "features need 21" in run.failures["NEWCO"]
    assert run.failures["ZLATE"].startswith("no daily bars")
    body = signals().json()
    assert [s["symbol"] for s in body["signals"]] == sorted(
        UNIVERSE, key=lambda s: [x["symbol"] for x in body["signals"]].index(s)
    )
    assert {m["symbol"] for m in body["missing"]} == {"NEWCO", "ZLATE"}
    assert "2 failed" in client.get("/health").json()["checks"]["signals"]["detail"]


def test_only_trading_days_are_hydrated(active: ModelVersion, settings: Any) -> None:
    """The broker's calendar decides: the window across Independence Day 2024 skips the 4th
    and the weekends, and never asks for them."""
    settings.FEATURE_HYDRATION_DAYS = 6
    run = hydration_run(trigger="manual", now=datetime(2024, 7, 9, 23, 0, tzinfo=UTC))
    assert run.status == "succeeded", run.reason
    assert run.dates == ["2024-07-01", "2024-07-02", "2024-07-03", "2024-07-05", "2024-07-08",
                         "2024-07-09"]  # fmt: skip
    assert run.failures == {}


def test_hydration_is_skipped_without_a_model_or_redis(signals_env: Any, settings: Any) -> None:
    run = hydration_run(trigger="startup")
    assert (run.status, run.reason) == ("skipped", "no model is active")
    settings.REDIS_URL = ""
    assert hydration_run(trigger="startup").reason == "Redis is not configured (REDIS_URL is empty)"


def test_a_timed_out_or_abandoned_run_is_failed_and_not_served(
    active: ModelVersion, settings: Any, client: Any
) -> None:
    HydrationRun.objects.create(
        trigger="startup", feature_set_version="daily-v1", days=15, status="running"
    )
    settings.FEATURE_HYDRATION_TIMEOUT_SECONDS = 0
    run = hydration_run(trigger="manual")
    assert run.status == "failed" and run.reason.startswith("timed out after 0s at 0/6")
    abandoned = HydrationRun.objects.filter(trigger="startup").get()
    assert abandoned.status == "failed" and abandoned.reason.startswith("abandoned")
    assert signals().status_code == 503
    detail = client.get("/health").json()["checks"]["signals"]["detail"]
    assert "last hydration failed: timed out" in detail


def test_health_shows_hydration_progress(active: ModelVersion, client: Any) -> None:
    HydrationRun.objects.create(
        trigger="daily", feature_set_version="daily-v1", days=15, status="running",
        symbols_total=500, symbols_done=120,
    )  # fmt: skip
    check = client.get("/health").json()["checks"]["signals"]
    assert check["status"] == "degraded" and "120/500 symbols" in check["detail"]
    assert client.get("/ready/signals").json()["hydration"]["symbols_done"] == 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def redis_server(port: int) -> Any:
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)

    def up() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    try:
        wait_for(up, timeout=10)
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_redis_restart_is_refilled_and_redis_down_is_503_not_500(
    active: ModelVersion, settings: Any, client: Any
) -> None:
    port = free_port()
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    with redis_server(port):
        run_queued()
        before = signals()
        assert before.status_code == 200
    down = signals()  # Redis is gone
    assert (
        down.status_code == 503 and "feature cache unavailable" in down.json()["error"]["message"]
    )
    assert client.get("/health").status_code == 200
    failed = hydration_run(trigger="manual")
    assert failed.status == "failed" and "feature cache unavailable" in failed.reason
    with redis_server(port):  # back, and empty
        empty = signals()
        assert empty.status_code == 503
        assert "refill requested" in empty.json()["error"]["message"]
        tasks = queued_tasks()
        assert [(t["func"], t["kwargs"]) for t in tasks] == [
            ("signals.tasks.hydrate", {"trigger": "refill"})
        ]
        signals()  # still cold: the queued refill covers this request too (coalesced)
        assert len(queued_tasks()) == 1
        run_queued()
        after = signals()
        assert after.status_code == 200
        assert after.json()["signals"] == before.json()["signals"]


def test_cluster_start_hook_schedules_and_hydrates_once(active: ModelVersion) -> None:
    from django_q.models import OrmQ, Schedule

    from signals.tasks import cluster_started

    OrmQ.objects.all().delete()  # the activation's request
    assert cluster_started("host:41:100") is True
    assert cluster_started("host:41:100") is False  # the second worker of the same cluster
    assert [(t["func"], t["kwargs"]) for t in queued_tasks()] == [
        ("signals.tasks.hydrate", {"trigger": "startup"})
    ]
    daily = Schedule.objects.get(name="signals-hydration-daily")
    assert (daily.schedule_type, daily.cron, daily.func) == (
        "C",
        "15 22 * * 1-5",
        "signals.tasks.hydrate",
    )
    assert daily.next_run.hour == 22 and daily.next_run.weekday() < 5
    assert Schedule.objects.get(name="signals-watchdog").minutes == 5


def test_the_daily_schedule_hydrates(active: ModelVersion, q_sync: None) -> None:
    from django.utils import timezone
    from django_q.models import Schedule
    from django_q.scheduler import scheduler

    from signals.tasks import schedules_ensure

    schedules_ensure()
    Schedule.objects.filter(name="signals-hydration-daily").update(next_run=timezone.now())
    scheduler()
    assert HydrationRun.objects.get(trigger="daily").status == "succeeded"
    assert Schedule.objects.get(name="signals-hydration-daily").next_run > timezone.now()


def test_hydrate_features_command(active: ModelVersion) -> None:
    out = StringIO()
    call_command("hydrate_features", stdout=out)
    assert "enqueued" in out.getvalue()
    out = StringIO()
    call_command("hydrate_features", "--now", "--days", "5", stdout=out)
    assert "succeeded: 6/6 symbols" in out.getvalue()
    assert HydrationRun.objects.filter(trigger="manual").get().days == 5
    with pytest.raises(CommandError, match="--days"):
        call_command("hydrate_features", "--now", "--days", "0", stdout=StringIO())


def test_scores_are_finite(active: ModelVersion) -> None:
    run_queued()
    scores = [s["score"] for s in signals().json()["signals"]]
    assert np.isfinite(scores).all() and len(set(scores)) > 1
