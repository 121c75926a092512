"""Issue 9 point 7 / issue 11 point 5: no order is priced from a quote older than
QUOTE_MAX_AGE_SECONDS, through the API, with the paper broker's quote refresh stopped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from orders.models import Order, RiskLimit
from tests.helpers import metric, place, wait_for
from tests.orders.twap_support import make_plan, posts_by_coid, run_once, slices
from tradeops.broker import get_broker

pytestmark = pytest.mark.django_db


def broker_quote_age(symbol: str) -> float:
    quote = get_broker().get_latest_quote(symbol)
    assert quote is not None
    return (datetime.now(UTC) - quote.timestamp).total_seconds()


def freeze_quotes(paper: Any, *, older_than: float, symbol: str = "AAPL") -> None:
    """The broker stops refreshing quotes (the drill of docs/marketdata.md); wait until its
    quote of ``symbol`` is older than ``older_than`` seconds."""
    paper.set_config(tick_seconds=0)
    wait_for(lambda: broker_quote_age(symbol) > older_than, timeout=10, interval=0.1)


def test_market_order_priced_from_a_stale_quote_is_refused_503_quote_stale(
    paper: Any, trader: Any, settings: Any
) -> None:
    settings.QUOTE_MAX_AGE_SECONDS = 1.0
    resting = place(trader, type="limit", limit_price="90.00", qty=5, time_in_force="gtc")
    assert resting.status_code == 201 and resting.json()["status"] == "new"
    freeze_quotes(paper, older_than=1.2)

    refused = place(trader, qty=7)

    assert refused.status_code == 503
    error = refused.json()["error"]
    assert error["code"] == "quote_stale"
    assert error["details"]["age_seconds"] > 1.0
    assert error["details"]["max_age_seconds"] == 1.0
    assert error["details"]["source"] == "broker"
    assert int(refused["Retry-After"]) > 0
    assert not Order.objects.filter(qty=7).exists()
    # A limit order is judged on its own price, and a cancel never needs a quote.
    limit = place(trader, type="limit", limit_price="101.00", qty=2)
    assert limit.status_code == 201 and limit.json()["status"] == "filled"
    cancel = trader.post(
        f"/api/v1/orders/{resting.json()['client_order_id']}/cancel", {}, format="json"
    )
    assert cancel.status_code == 200
    assert Order.objects.get(qty=5).status == "canceled"


def test_a_fresh_quote_prices_the_market_order_again(
    paper: Any, trader: Any, settings: Any
) -> None:
    settings.QUOTE_MAX_AGE_SECONDS = 1.0
    freeze_quotes(paper, older_than=1.2)
    assert place(trader).json()["error"]["code"] == "quote_stale"
    paper.set_config(tick_seconds=0.1)  # quotes refresh again
    wait_for(lambda: broker_quote_age("AAPL") < 0.5, timeout=5, interval=0.05)
    assert place(trader).status_code == 201


# --- TWAP slices are priced right before they go out ------------------------------------------
@pytest.mark.usefixtures("start_not_gating")
def test_a_market_slice_waits_for_a_fresh_quote_and_a_limit_slice_does_not(
    paper: Any, trader: Any, settings: Any
) -> None:
    settings.QUOTE_MAX_AGE_SECONDS = 1.0
    start = timezone.now() - timedelta(seconds=5)
    market = make_plan(start=start, qty=2, interval_seconds=30)
    limit = make_plan(
        start=start,
        qty=2,
        interval_seconds=30,
        order_type="limit",
        limit_price=Decimal("101.00"),
    )
    freeze_quotes(paper, older_than=1.2)
    before = metric("twap_slices_total", outcome="deferred_quote_stale")

    output = run_once()

    assert "1 deferred_quote_stale" in output
    assert metric("twap_slices_total", outcome="deferred_quote_stale") == before + 1
    first = slices(market)[0]
    assert (first.status, first.send_claimed_at) == ("pending_new", None)
    assert first.client_order_id not in posts_by_coid(paper)
    assert slices(limit)[0].status == "filled"
    paper.set_config(tick_seconds=0.1)
    wait_for(lambda: broker_quote_age("AAPL") < 0.5, timeout=5, interval=0.05)
    run_once()
    assert slices(market)[0].status == "filled"


@pytest.mark.usefixtures("start_not_gating")
def test_a_market_slice_is_held_when_its_notional_at_the_current_price_breaks_the_limit(
    paper: Any, trader: Any
) -> None:
    RiskLimit.objects.filter(symbol="*").update(max_order_notional=Decimal("1000.00"))
    plan = make_plan(start=timezone.now() - timedelta(seconds=5), qty=10, interval_seconds=30)
    assert slices(plan)[0].qty == 5  # 5 x ~100 fitted the limit when the plan was made
    paper.set_prices({"AAPL": "300.00"})

    output = run_once()

    assert "1 deferred_risk_limit" in output
    assert slices(plan)[0].status == "pending_new"
    assert posts_by_coid(paper) == {}
