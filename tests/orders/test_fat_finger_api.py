"""Issue 12 point 4: the fat-finger policy at the API's door, through HTTP against the paper
broker (AAPL quoted 99.98 / 100.02). ok; warn (accepted, with warnings in the order's JSON);
step_up (422 unless the strategy's max_unconfirmed_notional allows it); refuse (the collar, the
ADV share); a market order without a fresh quote stays 503 quote_stale; TWAP plans judged on
their largest slice (size) and their total (ADV); an operator's order needs its tier
confirmed (what the admin's Place order page does)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from marketdata.services import adv_get
from orders.fat_finger_checks import fat_finger_assess
from orders.models import Order, RiskLimit, SlicingPlan, Strategy
from orders.risk import OrderIntent
from orders.services import order_submit
from tests.helpers import metric, place
from tests.marketdata.test_quote_guard import freeze_quotes
from tests.orders.twap_support import twap
from tradeops.errors import RiskRejected

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fat_finger_configured")]

WARN_60 = "notional $6,001.20 exceeds the warning threshold $5,000.00"  # 60 x ask 100.02


def broker_posts(paper: Any) -> list[dict]:
    return paper.requests(method="POST", path="/v2/orders")


def verdicts(tier: str, origin: str = "api") -> float:
    return metric("fat_finger_verdicts_total", tier=tier, origin=origin)


def test_a_small_order_passes_without_warnings(paper: Any, trader: Any) -> None:
    before = verdicts("ok")
    response = place(trader, qty=10)
    assert response.status_code == 201, response.json()
    assert response.json()["warnings"] == []
    assert verdicts("ok") == before + 1


def test_a_warn_tier_order_is_accepted_with_its_warnings(paper: Any, trader: Any) -> None:
    before = verdicts("warn")
    response = place(trader, qty=60)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "filled" and body["warnings"] == [WARN_60]
    assert Order.objects.get().warnings == [WARN_60]
    again = trader.get(f"/api/v1/orders/{body['client_order_id']}")
    assert again.json()["warnings"] == [WARN_60]  # stored with the order, not just returned
    assert verdicts("warn") == before + 1


def test_many_shares_warn_even_when_cheap(paper: Any, trader: Any) -> None:
    paper.set_prices({"AAPL": "2.00"})
    response = place(trader, qty=1001, type="limit", limit_price="2.00")
    assert response.status_code == 201, response.json()
    assert response.json()["warnings"] == [
        "qty 1,001 shares exceeds the warning threshold 1,000 shares"
    ]


def test_step_up_is_refused_for_a_strategy_unless_it_allows_that_notional(
    paper: Any, trader: Any
) -> None:
    before = verdicts("step_up")
    refused = place(trader, qty=110)  # 110 x 100.02 = $11,002.20
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "fat_finger"
    assert error["details"]["tier"] == "step_up"
    assert error["details"]["reasons"] == [
        "notional $11,002.20 exceeds the step-up threshold $10,000.00"
    ]
    assert error["details"]["max_unconfirmed_notional"] == "10000"
    assert "OTP" in error["message"]
    assert not Order.objects.exists() and broker_posts(paper) == []
    assert verdicts("step_up") == before + 1

    Strategy.objects.filter(pk="alpha").update(max_unconfirmed_notional=Decimal("11002.20"))
    allowed = place(trader, qty=110)
    assert allowed.status_code == 201, allowed.json()
    assert allowed.json()["warnings"] == error["details"]["reasons"]
    bigger = place(trader, qty=111)  # $11,102.22: above what alpha may place unconfirmed
    assert bigger.status_code == 422 and bigger.json()["error"]["code"] == "fat_finger"


@pytest.mark.parametrize(
    ("side", "price", "status"),
    [
        ("buy", "110.02", 201),  # ask 100.02 x 1.10 = 110.022
        ("buy", "110.03", 422),
        ("sell", "89.99", 201),  # bid 99.98 x 0.90 = 89.982
        ("sell", "89.98", 422),
    ],
)
def test_a_limit_through_the_price_collar_is_refused(
    paper: Any, trader: Any, side: str, price: str, status: int
) -> None:
    if side == "sell":  # a position to sell (a short would need a shortable asset)
        assert place(trader, qty=1).status_code == 201
    response = place(trader, side=side, qty=1, type="limit", limit_price=price)
    assert response.status_code == status, response.json()
    if status == 422:
        error = response.json()["error"]
        assert error["code"] == "fat_finger" and error["details"]["tier"] == "refuse"
        assert error["details"]["limits"] == ["collar_pct"]
        assert "price collar" in error["details"]["reasons"][0]
        assert not Order.objects.filter(side=side, order_type="limit").exists()


def test_a_buy_stop_far_below_the_market_is_refused(paper: Any, trader: Any) -> None:
    response = place(trader, qty=1, type="stop", stop_price="80.00")
    assert response.status_code == 422
    assert response.json()["error"]["details"]["tier"] == "refuse"
    assert "trigger at once far through the market" in response.json()["error"]["message"]


def test_a_market_order_without_a_fresh_quote_stays_503_quote_stale(
    paper: Any, trader: Any, settings: Any
) -> None:
    settings.QUOTE_MAX_AGE_SECONDS = 1.0
    freeze_quotes(paper, older_than=1.2)
    refused = place(trader, qty=7)
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "quote_stale"  # before the fat-finger check
    # A limit order is judged on its own price; the collar could not be checked: a warning.
    limit = place(trader, qty=2, type="limit", limit_price="101.00")
    assert limit.status_code == 201, limit.json()
    assert limit.json()["warnings"] == [
        "no fresh quote (none within 1 s): the price collar was not checked"
    ]


def adv_share(adv: Decimal, shares: int) -> Decimal:
    """A RiskLimit fraction of ADV near ``shares`` (6 decimals: within 10 shares of a 20M ADV)."""
    return (Decimal(shares) / adv).quantize(Decimal("1e-6"))


def test_the_adv_share_warns_and_refuses(paper: Any, trader: Any) -> None:
    paper.set_prices({"AAPL": "1.00"})  # cheap: only the ADV share matters
    adv = Decimal(adv_get(symbol="AAPL", now=timezone.now())[0].adv)
    RiskLimit.objects.update_or_create(
        symbol="AAPL",
        defaults={
            "fat_finger_warn_pct_adv": adv_share(adv, 200),
            "fat_finger_max_pct_adv": adv_share(adv, 800),
        },
    )
    assert place(trader, qty=50).json()["warnings"] == []
    warned = place(trader, qty=400)
    assert warned.status_code == 201, warned.json()
    assert "400 shares are" in warned.json()["warnings"][0]
    assert "of the ADV" in warned.json()["warnings"][0]
    refused = place(trader, qty=900)
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["limits"] == ["max_pct_adv"]


# --- TWAP plans: the largest slice for size, the total for ADV ------------------------------------
def test_a_plan_is_judged_on_its_largest_slice_for_size(paper: Any, trader: Any) -> None:
    warned = twap(trader, qty=600)  # 10 slices of 60: each $6,001.20
    assert warned.status_code == 201, warned.json()
    assert warned.json()["warnings"] == [WARN_60]
    assert SlicingPlan.objects.get().warnings == [WARN_60]
    assert all(s["warnings"] == [] for s in warned.json()["slices"])
    refused = twap(trader, qty=1200)  # slices of 120: $12,002.40 each, step-up
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["tier"] == "step_up"
    assert SlicingPlan.objects.count() == 1


def test_a_plan_is_judged_on_its_total_for_the_adv_share(paper: Any, trader: Any) -> None:
    adv = Decimal(adv_get(symbol="AAPL", now=timezone.now())[0].adv)
    RiskLimit.objects.update_or_create(
        symbol="AAPL",
        defaults={"fat_finger_max_pct_adv": adv_share(adv, 60)},
    )
    assert place(trader, qty=10).status_code == 201  # one slice's size alone passes
    refused = twap(trader, qty=100)  # 10 slices of 10, 100 shares in total
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "fat_finger" and error["details"]["limits"] == ["max_pct_adv"]
    assert "100 shares are" in error["details"]["reasons"][0]


# --- an operator's order: the tier must have been confirmed --------------------------------------
def intent(qty: int, **kw: Any) -> OrderIntent:
    fields = {"order_type": "market", "origin": "admin", "confirmed_tier": "ok", **kw}
    return OrderIntent(
        strategy_id="alpha", symbol="AAPL", side="buy", qty=qty, time_in_force="day", **fields
    )


def test_an_operator_order_needs_its_tier_confirmed(paper: Any, trader: Any, ops_user: Any) -> None:
    with pytest.raises(RiskRejected) as unconfirmed:
        order_submit(request=intent(60), actor=ops_user)
    assert unconfirmed.value.code == "fat_finger"
    assert unconfirmed.value.details["confirm_tier"] == "warn"
    assert verdicts("warn", "admin") >= 1
    with pytest.raises(RiskRejected) as step_up:
        order_submit(request=intent(110, confirmed_tier="warn"), actor=ops_user)
    assert step_up.value.details["confirm_tier"] == "step_up"
    placed = order_submit(request=intent(110, confirmed_tier="step_up"), actor=ops_user)
    assert placed.created and placed.order.status == "filled"
    assert placed.order.warnings == ["notional $11,002.20 exceeds the step-up threshold $10,000.00"]
    with pytest.raises(RiskRejected) as refused:  # no confirmation passes a refusal
        order_submit(
            request=intent(1, confirmed_tier="refuse", order_type="stop", stop_price=Decimal("80")),
            actor=ops_user,
        )
    assert refused.value.details["tier"] == "refuse"


def test_verified_staff_through_the_api_cannot_confirm(
    paper: Any, trader: Any, ops_admin: Any
) -> None:
    body = {
        "strategy": "alpha",
        "symbol": "AAPL",
        "side": "buy",
        "qty": 60,
        "type": "market",
        "time_in_force": "day",
    }
    response = ops_admin.post("/api/v1/orders", body, content_type="application/json")
    assert response.status_code == 422
    assert response.json()["error"]["details"]["confirm_tier"] == "warn"
    assert "Place order" in response.json()["error"]["message"]


def test_the_assessment_is_the_checks_computation(paper: Any, trader: Any) -> None:
    assessment = fat_finger_assess(intent(60))
    assert assessment.tier == "warn" and assessment.verdict.reasons == (WARN_60,)
    assert assessment.verdict.notional == Decimal("6001.20")
    assert (assessment.quote.bid, assessment.quote.ask) == (Decimal("99.98"), Decimal("100.02"))
    assert assessment.quote.source and assessment.quote.age_seconds is not None
    assert assessment.adv is not None and assessment.adv > 0
    assert assessment.thresholds.step_up_notional == Decimal("10000")
    assert assessment.limits.max_order_qty > 0


def test_a_client_cannot_claim_a_confirmed_tier(paper: Any, trader: Any) -> None:
    response = place(trader, qty=110, confirmed_tier="step_up")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "confirmed_tier" in response.json()["error"]["details"]["fields"]
    assert not Order.objects.exists()
