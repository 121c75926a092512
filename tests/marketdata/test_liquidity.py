"""ADV20 from the paper broker's daily bars through the real alpaca-py data client, its DB cache,
and the slice-size cap it gives TWAP plans (plan §5)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from marketdata.models import AverageDailyVolume
from marketdata.services import liquidity_constraint, max_slice_qty_for
from orders.models import SlicingPlan
from tests.orders.twap_support import twap

pytestmark = pytest.mark.django_db


def bar_requests(paper: Any) -> int:
    return len(paper.requests(method="GET", path="/v2/stocks/bars"))


@pytest.mark.parametrize(
    ("adv", "pct", "cap"),
    [
        (20_000, Decimal("0.01"), 200),
        (150, Decimal("0.01"), 1),  # never below one share
        (0, Decimal("0.01"), 1),
        (1_234_567, Decimal("0.005"), 6172),  # int() truncates
    ],
)
def test_cap_is_a_percentage_of_adv_at_least_one_share(adv: int, pct: Decimal, cap: int) -> None:
    assert max_slice_qty_for(adv=adv, pct=pct) == cap


def test_adv20_from_daily_bars_is_cached_in_the_database(paper: Any, settings: Any) -> None:
    paper.set_symbol("THIN", adv=20_000)
    first = liquidity_constraint(symbol="THIN", now=timezone.now())
    assert first.source == "bars"
    assert 15_000 <= first.adv <= 25_000  # the paper broker's volumes scatter around the ADV
    assert first.max_slice_qty == int(first.adv * Decimal("0.01"))
    row = AverageDailyVolume.objects.get(symbol="THIN")
    assert (row.adv, row.bars_used, row.lookback_days) == (first.adv, 20, 20)
    assert bar_requests(paper) == 1
    again = liquidity_constraint(symbol="THIN", now=timezone.now())
    assert (again.source, again.adv) == ("cache", first.adv)
    assert bar_requests(paper) == 1  # served from the cache
    settings.ADV_CACHE_SECONDS = 0  # expired: asked again
    paper.set_symbol("THIN", adv=2_000_000)
    fresh = liquidity_constraint(symbol="THIN", now=timezone.now())
    assert fresh.source == "bars" and fresh.adv > 1_000_000
    assert bar_requests(paper) == 2


def test_no_bars_means_no_cap_and_a_recorded_warning(paper: Any, trader: Any, caplog: Any) -> None:
    paper.add_fault("GET", "/v2/stocks/bars", "error500", count=-1)
    response = twap(trader, qty=1000)
    assert response.status_code == 201  # a missing ADV never blocks the plan
    liquidity = response.json()["liquidity"]
    assert (liquidity["source"], liquidity["max_slice_qty"]) == ("unavailable", None)
    assert "no cap" in liquidity["note"] and "500" in liquidity["note"]
    assert response.json()["slice_count"] == 10
    assert "no liquidity cap for AAPL" in caplog.text
    assert not AverageDailyVolume.objects.exists()


def test_switched_off_liquidity_check_asks_nothing(paper: Any, settings: Any) -> None:
    settings.LIQUIDITY_CHECK_ENABLED = False
    constraint = liquidity_constraint(symbol="THIN", now=timezone.now())
    assert (constraint.source, constraint.max_slice_qty) == ("disabled", None)
    assert bar_requests(paper) == 0


def test_thin_symbol_gets_more_smaller_slices_within_the_same_duration(
    paper: Any, trader: Any
) -> None:
    paper.set_symbol("THIN", adv=5_000)  # cap about 50 shares a slice
    liquid = twap(trader, symbol="AAPL", qty=1000).json()
    thin = twap(trader, symbol="THIN", qty=1000).json()
    assert liquid["slice_count"] == 10 and {s["qty"] for s in liquid["slices"]} == {100}
    cap = thin["liquidity"]["max_slice_qty"]
    assert 30 <= cap <= 70
    assert thin["slice_count"] == -(-1000 // cap) > 10
    assert max(s["qty"] for s in thin["slices"]) <= cap
    assert sum(s["qty"] for s in thin["slices"]) == 1000
    assert thin["slice_interval_seconds"] == 600 // thin["slice_count"] < 60
    start, last = (
        parse_datetime(t) for t in (thin["start_at"], thin["slices"][-1]["scheduled_time"])
    )
    assert (last - start).total_seconds() < 600  # still inside the same 10 minutes
    plan = SlicingPlan.objects.get(pk=thin["id"])
    assert (plan.adv, plan.max_slice_qty, plan.liquidity_source) == (
        thin["liquidity"]["adv"],
        cap,
        "bars",
    )
