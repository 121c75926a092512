"""Acceptance drills for durable TWAP, with real processes: ``manage.py run_slices`` killed with
SIGKILL at chosen points and restarted, ``manage.py recover_slices`` in between, two dispatchers
racing over the same slices, and a liquidity cap that must survive a restart. PostgreSQL, the
paper broker and the real alpaca-py client throughout."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from marketdata.models import AverageDailyVolume
from orders.models import DispatcherRun, Order, PlanStatus, SlicingPlan
from tests.helpers import wait_for
from tests.orders.twap_support import (
    broker_orders_by_coid,
    make_plan,
    metric,
    posts_by_coid,
    reconcile_startup,
    run_manage,
    slices,
    start_manage,
    twap,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class Dispatchers:
    """Starts ``run_slices`` processes for one test and makes sure none outlives it."""

    def __init__(self, paper: Any, **env: str) -> None:
        self.paper, self.env, self.procs = paper, env, []

    def start(self, *args: str) -> subprocess.Popen:
        runs = DispatcherRun.objects.count()
        proc = start_manage(self.paper, "run_slices", *args, **self.env)
        self.procs.append(proc)
        # Registered (its start is what recovery compares claims with) and ready to work.
        wait_for(
            lambda: DispatcherRun.objects.count() > runs or proc.poll() is not None, timeout=30
        )
        assert proc.poll() is None, proc.communicate()[0]
        reconcile_startup()  # the job cluster's part: reconcile after the (re)start
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        proc.kill()  # SIGKILL: no handler runs, nothing is cleaned up
        proc.wait(timeout=10)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def dispatchers(paper: Any, tmp_path: Path) -> Any:
    pool = Dispatchers(
        paper,
        DJANGO_SETTINGS_MODULE="tests.orders.twap_crash_settings",
        TWAP_TEST_HOLD_FILE=str(tmp_path / "hold"),
        MISFIRE_GRACE_SECONDS="3600",
        ALPACA_HTTP_TIMEOUT_SECONDS="60",  # a held answer must outlast the kill, not time out
    )
    yield pool
    pool.close()


def filled(plan: SlicingPlan) -> int:
    return Order.objects.filter(plan=plan, status="filled").count()


def until(predicate: Callable[[], Any], timeout: float = 30) -> Any:
    return wait_for(predicate, timeout=timeout, interval=0.02)


def test_sigkill_at_any_point_sends_every_slice_exactly_once(
    paper: Any, trader: Any, dispatchers: Dispatchers, tmp_path: Path
) -> None:
    # 60 slices a second apart: 30 overdue at once, 30 arriving live during the drill.
    plan = make_plan(start=timezone.now() - timedelta(seconds=30), qty=60, symbol="THIN")
    hold = tmp_path / "hold"

    # 1. Killed while a slice is claimed but not yet sent (held right before its submit).
    hold.touch()
    first = dispatchers.start()
    held_coid = (
        until(lambda: (tmp_path / "hold.held").exists()) and (tmp_path / "hold.held").read_text()
    )
    dispatchers.kill(first)
    hold.unlink()
    held = Order.objects.get(client_order_id=held_coid)
    assert (held.status, held.send_claimed_at is not None) == ("pending_new", True)
    assert posts_by_coid(paper)[held_coid] == 0
    zombies = Order.objects.filter(plan=plan, status="pending_new", send_claimed_at__isnull=False)
    assert zombies.count() >= 1

    # 2. Restart; the first submit is answered only after 30 s: killed between the broker
    #    accepting the order and the database recording it.
    #    The restart's startup reconciliation asks the broker about the zombie (not there)
    #    and its recovery releases the dead dispatcher's claim: the slice goes out again under
    #    its original client_order_id.
    paper.add_fault("POST", "/v2/orders", "delay_after_commit", count=1, delay=30)
    recovered = metric("twap_slices_recovered_total")
    second = dispatchers.start()
    assert metric("twap_slices_recovered_total") > recovered
    delayed = until(
        lambda: [r for r in paper.requests(method="POST") if r["fault"] == "delay_after_commit"]
    )[0]["client_order_id"]
    dispatchers.kill(second)
    paper.clear_faults()
    row = Order.objects.get(client_order_id=delayed)
    assert (row.status, row.send_claimed_at is not None) == ("pending_new", True)
    assert broker_orders_by_coid(paper)[delayed] == 1  # the broker has it; we do not know

    # 3. Restart + recovery: the accepted-but-unrecorded slice is found, not resent. Then a
    #    kill in the middle of live dispatching.
    #    The startup reconciliation finds it at the broker by client_order_id and applies it.
    third = dispatchers.start()
    assert Order.objects.get(client_order_id=delayed).status == "filled"
    assert posts_by_coid(paper)[delayed] == 1
    reached = filled(plan) + 5
    until(lambda: filled(plan) >= reached, timeout=60)
    dispatchers.kill(third)

    # 4. Killed while starting up.
    fourth = start_manage(paper, "run_slices", **dispatchers.env)
    dispatchers.procs.append(fourth)
    time.sleep(0.3)  # mid-import: no handler, no registration yet
    dispatchers.kill(fourth)

    # 5. Restart, recover, run to the end.
    dispatchers.start("--until-idle")
    run_manage(paper, "recover_slices")
    until(lambda: filled(plan) == 60, timeout=90)

    coids = [s.client_order_id for s in slices(plan)]
    assert posts_by_coid(paper) == dict.fromkeys(coids, 1)  # every slice submitted once
    assert broker_orders_by_coid(paper) == dict.fromkeys(coids, 1)  # and held once
    broker_position = {p["symbol"]: p["qty"] for p in paper.state()["positions"]}
    assert broker_position["THIN"] == "60"  # the filled total equals the plan
    assert sum(s.filled_qty for s in slices(plan)) == 60
    until(lambda: SlicingPlan.objects.get(pk=plan.pk).status == PlanStatus.COMPLETED)


def test_two_dispatchers_over_500_due_slices_never_send_one_twice(
    paper: Any, trader: Any, dispatchers: Dispatchers
) -> None:
    symbols = ["THIN", "AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "HHH"]
    paper.set_prices(dict.fromkeys(symbols, "5.00"))
    start = timezone.now() - timedelta(seconds=60)
    plans = [make_plan(start=start, qty=60, symbol=symbol) for symbol in symbols]
    total = Order.objects.filter(status="pending_new").count()
    assert total == 540
    procs = [
        start_manage(paper, "run_slices", "--until-idle", MISFIRE_GRACE_SECONDS="3600")
        for _ in range(2)
    ]
    dispatchers.procs.extend(procs)
    # Both registered (each start closed the gate); then the job cluster's startup run.
    wait_for(lambda: DispatcherRun.objects.count() >= 2, timeout=30)
    reconcile_startup()
    outputs = [proc.communicate(timeout=180)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    # The summary line, not a progress line (printed every 10 s on a slow machine).
    submitted = [
        int(re.search(r"stopped after .*?(\d+) submitted", out).group(1)) for out in outputs
    ]
    assert sum(submitted) == 540 and min(submitted) > 0, outputs  # both did work
    coids = list(Order.objects.values_list("client_order_id", flat=True))
    assert posts_by_coid(paper) == dict.fromkeys(coids, 1)
    assert broker_orders_by_coid(paper) == dict.fromkeys(coids, 1)
    assert Order.objects.filter(status="filled").count() == 540
    assert {p.status for p in SlicingPlan.objects.filter(pk__in=[p.pk for p in plans])} == {
        PlanStatus.COMPLETED
    }


def test_liquidity_cap_survives_a_restart_when_the_adv_source_changes(
    paper: Any, trader: Any, dispatchers: Dispatchers, settings: Any
) -> None:
    paper.set_symbol("THIN", adv=5_000)
    created = twap(trader, symbol="THIN", qty=1000)
    assert created.status_code == 201
    plan = created.json()
    cap = plan["liquidity"]["max_slice_qty"]
    assert plan["slice_count"] > 10 and max(s["qty"] for s in plan["slices"]) <= cap
    before = [(s["client_order_id"], s["qty"], s["scheduled_time"]) for s in plan["slices"]]

    first = dispatchers.start()
    until(lambda: Order.objects.filter(plan_id=plan["id"], status="filled").exists())
    dispatchers.kill(first)

    # The ADV source now says the symbol is liquid (and the cached figure has expired).
    paper.set_symbol("THIN", adv=5_000_000)
    settings.ADV_CACHE_SECONDS = 0
    dispatchers.start()
    run_manage(paper, "recover_slices")
    again = twap(trader, symbol="THIN", qty=1000)
    assert again.status_code == 200 and again.json()["id"] == plan["id"]
    assert again.json()["liquidity"] == plan["liquidity"]  # the cap as it was at plan time
    after = [(s["client_order_id"], s["qty"], s["scheduled_time"]) for s in again.json()["slices"]]
    assert after == before  # same slices, same ids, same sizes
    fresh = twap(trader, symbol="THIN", qty=999).json()  # a new plan sees the new ADV
    assert AverageDailyVolume.objects.get(symbol="THIN").adv > 1_000_000
    assert fresh["liquidity"]["max_slice_qty"] > cap and fresh["slice_count"] == 10
    second_slice = Order.objects.get(plan_id=plan["id"], slice_num=1)
    assert second_slice.qty == before[1][1]
