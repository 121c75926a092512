"""Pre-trade risk checks, kill switch and circuit breaker, through the API."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from orders.controls import trading_switch_set
from orders.models import Order, RiskLimit, TradingSwitch
from tests.helpers import place
from tradeops.models import AuditEvent

pytestmark = pytest.mark.django_db


def error(response: Any) -> dict:
    return response.json()["error"]


@pytest.mark.parametrize("name", ["kill_switch", "circuit_breaker"])
def test_engaged_switch_refuses_new_risk_with_503(paper: Any, trader: Any, name: str) -> None:
    trading_switch_set(name=name, engaged=True, actor="test", reason="drill")
    response = place(trader)
    assert response.status_code == 503
    assert error(response)["code"] == name
    assert response["Retry-After"]
    assert Order.objects.count() == 0
    assert AuditEvent.objects.filter(action=f"{name}.engage", reason="drill").exists()


def test_kill_switch_lets_cancels_and_reduce_only_orders_through(paper: Any, trader: Any) -> None:
    assert place(trader, qty=50).status_code == 201  # long 50 (filled)
    resting = place(trader, type="limit", limit_price="80.00", qty=5, time_in_force="gtc").json()
    trading_switch_set(name="kill_switch", engaged=True, actor="test", reason="halt drill")
    assert place(trader, qty=1, side="buy").status_code == 503  # increases the long
    assert place(trader, qty=51, side="sell").status_code == 503  # would flip to short
    assert place(trader, qty=20, side="sell").status_code == 201  # reduces
    cancel = trader.post(f"/api/v1/orders/{resting['client_order_id']}/cancel", {}, format="json")
    assert cancel.status_code == 200


def test_missing_switch_row_fails_closed(paper: Any, trader: Any) -> None:
    TradingSwitch.objects.filter(name="circuit_breaker").delete()
    response = place(trader)
    assert response.status_code == 503
    assert error(response)["code"] == "circuit_breaker"


def test_max_order_qty_global_and_per_symbol(paper: Any, trader: Any) -> None:
    RiskLimit.objects.filter(symbol="*").update(max_order_qty=100)
    refused = place(trader, qty=101)
    assert refused.status_code == 422
    assert error(refused)["code"] == "risk_limit"
    assert error(refused)["details"]["limit"] == "max_order_qty"
    RiskLimit.objects.update_or_create(symbol="MSFT", defaults={"max_order_qty": 5})
    assert place(trader, symbol="MSFT", qty=6).status_code == 422
    assert place(trader, symbol="MSFT", qty=5).status_code == 201
    assert place(trader, qty=100).status_code == 201


def test_notional_uses_the_quote_for_market_and_the_price_for_limits(
    paper: Any, trader: Any
) -> None:
    RiskLimit.objects.filter(symbol="*").update(max_order_notional=Decimal("1000.00"))
    assert place(trader, qty=11).status_code == 422  # 11 x ~100 > 1000
    assert place(trader, qty=9).status_code == 201
    refused = place(trader, type="limit", limit_price="200.00", qty=6)
    assert refused.status_code == 422
    assert error(refused)["details"]["notional"] == "1200.00"


def test_market_order_without_a_quote_is_refused_not_guessed(paper: Any, trader: Any) -> None:
    paper.add_fault(method="GET", path="/v2/stocks/quotes/latest", mode="error500", count=-1)
    response = place(trader)
    assert response.status_code == 503
    assert error(response)["code"] == "quote_unavailable"
    assert error(response)["details"]["hops"]["broker"].startswith("broker:")
    assert response["Retry-After"]
    assert place(trader, type="limit", limit_price="99.00").status_code == 201


def test_position_limit_counts_position_and_working_orders(paper: Any, trader: Any) -> None:
    RiskLimit.objects.filter(symbol="*").update(max_position_qty=100)
    assert place(trader, qty=60).status_code == 201  # filled: position 60
    assert (
        place(trader, type="limit", limit_price="90.00", qty=30, time_in_force="gtc").status_code
        == 201
    )  # working: 30
    refused = place(trader, qty=11)
    assert refused.status_code == 422
    details = error(refused)["details"]
    assert (details["position"], details["open_buy"], details["projected"]) == (60, 30, 101)
    assert place(trader, qty=10).status_code == 201  # position 70
    # Sells are judged on the short side: 70 - 171 = -101 breaches, 70 - 170 = -100 does not.
    assert place(trader, side="sell", qty=171).status_code == 422
    assert place(trader, side="sell", qty=170).status_code == 201


def test_breaker_trips_itself_after_repeated_broker_rejections(
    paper: Any, trader: Any, settings: Any
) -> None:
    settings.CIRCUIT_BREAKER_REJECTS_TO_TRIP = 3
    RiskLimit.objects.filter(symbol="*").update(max_order_notional=Decimal("100000000"))
    for qty in (5000, 5001, 5002):  # each beyond the account's buying power
        assert place(trader, qty=qty, symbol="MSFT").json()["error"]["code"] == "broker_rejected"
    tripped = place(trader, qty=1)
    assert tripped.status_code == 503
    assert error(tripped)["code"] == "circuit_breaker"
    assert AuditEvent.objects.filter(action="circuit_breaker.engage", actor_label="system").exists()
