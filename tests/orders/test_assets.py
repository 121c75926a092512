"""Only what the broker lists as an active, tradable asset trades (issue 9, point 8), through the
API, the TWAP dispatcher and ``manage.py sync_assets`` against the paper broker's asset list:
unknown, delisted and halted symbols refused (422 ``unknown_symbol``), a short sale of a
hard-to-borrow asset refused (422 ``not_shortable``), no list and no broker -> 503, a loaded
list still judges while the broker is down, cancels never blocked, and slices of an asset
halted after the plan was made ended with the reason."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone

from marketdata.models import Asset, AssetListState
from orders.models import Order, PlanStatus
from tests.helpers import metric, place
from tests.orders.twap_support import make_plan, run_once, slices, statuses, twap

pytestmark = pytest.mark.django_db

LIMIT = {"type": "limit", "limit_price": "10.00", "time_in_force": "gtc"}


def sync_assets(*args: str) -> str:
    out = StringIO()
    call_command("sync_assets", *args, stdout=out)
    return out.getvalue()


def error(response: Any) -> dict:
    assert response.status_code in (422, 503), response.json()
    return response.json()["error"]


def posts(paper: Any) -> int:
    return len(paper.requests(method="POST", path="/v2/orders"))


def test_an_unknown_symbol_is_refused_for_orders_and_plans(trader: Any, paper: Any) -> None:
    refused = error(place(trader, symbol="ZZZZ", **LIMIT))
    assert (refused["code"], refused["details"]) == (
        "unknown_symbol",
        {"symbol": "ZZZZ", "reason": "not listed"},
    )
    plan = error(twap(trader, symbol="ZZZZ", **LIMIT))
    assert plan["code"] == "unknown_symbol"
    assert posts(paper) == 0 and not Order.objects.exists()
    # the first order loaded the broker's list; ZZZZ was looked up once more, in case it was
    # listed since: not found
    assert AssetListState.objects.get().asset_count == Asset.objects.count() > 30
    assert len(paper.requests(method="GET", path="/v2/assets/ZZZZ")) == 2
    paper.set_asset("ZZZZ")  # a new listing: found by the lookup, no reload needed
    assert place(trader, symbol="ZZZZ", **LIMIT).status_code == 201


def test_halted_and_delisted_assets_are_refused_once_the_list_says_so(
    trader: Any, paper: Any
) -> None:
    assert place(trader, qty=1, **LIMIT).status_code == 201  # the list is loaded
    paper.set_asset("AAPL", tradable=False)
    paper.set_asset("MSFT", status="inactive")
    preview = sync_assets("--dry-run")
    assert "change AAPL: tradable, shortable -> NOT tradable, shortable" in preview
    assert "change MSFT: tradable, shortable -> NOT tradable, shortable" in preview
    assert Asset.objects.get(symbol="AAPL").tradable is True  # a dry run writes nothing
    assert "asset list loaded" in sync_assets()
    halted = error(place(trader, qty=2, **LIMIT))
    assert (halted["code"], halted["details"]["reason"]) == ("unknown_symbol", "not tradable")
    delisted = error(place(trader, symbol="MSFT", qty=2, **LIMIT))
    assert delisted["details"]["reason"] == "inactive"
    assert posts(paper) == 1
    paper.set_asset("AAPL", tradable=True)
    sync_assets()
    assert place(trader, qty=2, **LIMIT).status_code == 201


def test_a_short_sale_of_a_hard_to_borrow_asset_is_refused(trader: Any, paper: Any) -> None:
    paper.set_asset("TSLA", shortable=False)
    sell = {"symbol": "TSLA", "side": "sell"}
    refused = error(place(trader, qty=5, type="market", time_in_force="day", **sell))
    assert refused["code"] == "not_shortable"
    assert (refused["details"]["short_qty"], refused["details"]["position"]) == (5, 0)
    plan = twap(trader, qty=5, type="market", duration_minutes=1, interval_seconds=30, **sell)
    assert error(plan)["code"] == "not_shortable"
    assert place(trader, symbol="TSLA", qty=10).status_code == 201  # long 10 (filled)
    assert place(trader, qty=5, type="market", time_in_force="day", **sell).status_code == 201
    resting = {"type": "limit", "limit_price": "999.00", "time_in_force": "gtc", **sell}
    assert place(trader, qty=4, **resting).status_code == 201  # 5 long, 4 of them claimed
    # worst case: the resting sell fills too, then 2 more would leave us short 1
    over = error(place(trader, qty=2, type="market", time_in_force="day", **sell))
    assert (over["code"], over["details"]["short_qty"], over["details"]["open_sell"]) == (
        "not_shortable",
        1,
        4,
    )
    assert place(trader, qty=1, type="market", time_in_force="day", **sell).status_code == 201


def test_no_list_and_no_broker_fails_closed_but_a_loaded_list_still_judges(
    trader: Any, paper: Any
) -> None:
    failed_loads = metric("asset_refreshes_total", outcome="failed")
    paper.add_fault(method="GET", path="/v2/assets*", mode="error500", count=-1)
    response = place(trader, **LIMIT)
    assert response.status_code == 503
    down = error(response)
    assert down["code"] == "broker_unavailable"
    assert "no asset list is cached" in down["message"]
    with pytest.raises(CommandError, match="asset list not loaded"):
        sync_assets()
    state = AssetListState.objects.get()
    assert state.refreshed_at is None and "500" in state.last_error
    assert posts(paper) == 0
    paper.clear_faults()
    sync_assets()  # warm cache
    paper.add_fault(method="GET", path="/v2/assets*", mode="error500", count=-1)
    assert place(trader, **LIMIT).status_code == 201
    assert error(place(trader, symbol="ZZZZ", **LIMIT))["code"] == "unknown_symbol"
    assert metric("asset_refreshes_total", outcome="failed") == failed_loads + 2


def test_cancels_are_never_blocked_by_the_asset_list(trader: Any, paper: Any) -> None:
    placed = place(trader, **LIMIT)
    assert placed.status_code == 201
    paper.set_asset("AAPL", tradable=False)
    sync_assets()
    coid = placed.json()["client_order_id"]
    canceled = trader.post(f"/api/v1/orders/{coid}/cancel", {"reason": "halted"}, format="json")
    assert (canceled.status_code, canceled.json()["status"]) == (200, "canceled")


@pytest.mark.usefixtures("start_not_gating")
def test_slices_of_an_asset_halted_after_the_plan_was_made_end_with_the_reason(
    trader: Any, paper: Any
) -> None:
    start = timezone.now() - timedelta(seconds=25)
    plan = make_plan(start=start, qty=6, interval_seconds=10)  # 3 of 6 slices due
    run_once()
    assert statuses(plan) == {"filled": 3, "pending_new": 3}
    paper.set_asset("AAPL", tradable=False)
    sync_assets()
    with time_machine.travel(timezone.now() + timedelta(seconds=40), tick=True):
        output = run_once()
    assert "3 canceled" in output
    assert statuses(plan) == {"filled": 3, "canceled": 3}
    ended = slices(plan)[-1].events.get(status="canceled")
    assert "AAPL is not an active, tradable asset at the broker (not tradable)" in ended.note
    plan.refresh_from_db()
    assert (plan.status, plan.status_reason) == (
        PlanStatus.COMPLETED,
        "all 6 slices ended; 3 of 6 shares filled",
    )
    assert posts(paper) == 3  # nothing reached the broker after the halt


@pytest.mark.usefixtures("start_not_gating")
def test_sell_slices_never_take_a_hard_to_borrow_asset_short(trader: Any, paper: Any) -> None:
    assert place(trader, symbol="TSLA", qty=3).status_code == 201  # long 3
    # Shortable when the plan is made: a 6-share sell plan may go 3 short...
    plan = make_plan(
        start=timezone.now() - timedelta(seconds=60),
        qty=6,
        side="sell",
        symbol="TSLA",
        interval_seconds=10,
    )
    paper.set_asset("TSLA", shortable=False)  # ...until the broker stops lending it
    sync_assets()
    run_once()
    filled = sum(s.filled_qty for s in slices(plan))
    assert filled <= 3  # never short
    assert statuses(plan) == {"filled": 3, "canceled": 3}
    assert not statuses(plan).get("rejected")  # caught here, not by the broker
    position = {p["symbol"]: int(p["qty"]) for p in paper.state()["positions"]}
    assert position.get("TSLA", 0) >= 0
