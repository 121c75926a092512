"""The pure fat-finger policy: every threshold just below / at / just above, every tier, the
quote rules, TWAP (largest slice vs total), and monotonicity in size (hypothesis)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orders.fat_finger import (
    REFUSE,
    STEP_UP,
    TIERS,
    WARN,
    FatFingerOrder,
    FatFingerQuote,
    Thresholds,
    fat_finger_evaluate,
    tier_at_most,
    tier_rank,
)

T = Thresholds(
    warn_notional=D("5000"),
    warn_qty=1000,
    step_up_notional=D("10000"),
    collar_pct=D("0.10"),
    warn_pct_adv=D("0.01"),
    max_pct_adv=D("0.05"),
)
MAX_AGE = 60.0


def q(bid: str, ask: str, age: float = 1.0) -> FatFingerQuote:
    return FatFingerQuote(bid=D(bid), ask=D(ask), age_seconds=age)


def judge(order: FatFingerOrder, quote=None, adv=None, thresholds=T):
    return fat_finger_evaluate(order, quote, adv, thresholds, max_quote_age=MAX_AGE)


def limit(side: str, qty: int, price: str, **kw) -> FatFingerOrder:
    return FatFingerOrder(side, qty, "limit", limit_price=D(price), **kw)


def market(side: str, qty: int, **kw) -> FatFingerOrder:
    return FatFingerOrder(side, qty, "market", **kw)


def stop(side: str, qty: int, price: str, limit_price: str | None = None) -> FatFingerOrder:
    kind = "stop" if limit_price is None else "stop_limit"
    lp = None if limit_price is None else D(limit_price)
    return FatFingerOrder(side, qty, kind, limit_price=lp, stop_price=D(price))


CASES = [
    # notional: warn above FAT_FINGER_WARN_NOTIONAL (a 1-share limit near $5,000)
    ("notional below warn", limit("buy", 1, "4999.99"), q("4999", "5000"), None, "ok"),
    ("notional at warn", limit("buy", 1, "5000.00"), q("4999", "5000"), None, "ok"),
    ("notional above warn", limit("buy", 1, "5000.01"), q("4999", "5000"), None, WARN),
    # notional: step-up above FAT_FINGER_STEP_UP_NOTIONAL
    ("notional below step-up", limit("buy", 1, "9999.99"), q("9999", "10000"), None, WARN),
    ("notional at step-up", limit("buy", 1, "10000.00"), q("9999", "10000"), None, WARN),
    ("notional above step-up", limit("buy", 1, "10000.01"), q("9999", "10000"), None, STEP_UP),
    # qty: warn above FAT_FINGER_WARN_QTY
    ("qty below warn", limit("buy", 999, "1.00"), q("0.99", "1.00"), None, "ok"),
    ("qty at warn", limit("buy", 1000, "1.00"), q("0.99", "1.00"), None, "ok"),
    ("qty above warn", limit("buy", 1001, "1.00"), q("0.99", "1.00"), None, WARN),
    # collar: a buy limit above ask x 1.10, a sell limit below bid x 0.90
    ("buy limit below collar", limit("buy", 1, "109.99"), q("99", "100"), None, "ok"),
    ("buy limit at collar", limit("buy", 1, "110.00"), q("99", "100"), None, "ok"),
    ("buy limit above collar", limit("buy", 1, "110.01"), q("99", "100"), None, REFUSE),
    ("sell limit above collar", limit("sell", 1, "90.01"), q("100", "101"), None, "ok"),
    ("sell limit at collar", limit("sell", 1, "90.00"), q("100", "101"), None, "ok"),
    ("sell limit below collar", limit("sell", 1, "89.99"), q("100", "101"), None, REFUSE),
    # a stop-limit's limit is collared around its stop when the stop is further out
    ("buy stop-limit at collar", stop("buy", 1, "115", "126.50"), q("99", "100"), None, "ok"),
    ("buy stop-limit over", stop("buy", 1, "115", "126.51"), q("99", "100"), None, REFUSE),
    ("sell stop-limit at", stop("sell", 1, "85", "76.50"), q("100", "101"), None, "ok"),
    ("sell stop-limit over", stop("sell", 1, "85", "76.49"), q("100", "101"), None, REFUSE),
    # a stop that triggers at once: warn; far through the market: refuse
    ("buy stop above ask", stop("buy", 1, "100.01"), q("99", "100"), None, "ok"),
    ("buy stop at ask", stop("buy", 1, "100.00"), q("99", "100"), None, WARN),
    ("buy stop just inside", stop("buy", 1, "90.01"), q("89", "100"), None, WARN),
    ("buy stop at collar", stop("buy", 1, "90.00"), q("89", "100"), None, WARN),
    ("buy stop through", stop("buy", 1, "89.99"), q("89", "100"), None, REFUSE),
    ("sell stop below bid", stop("sell", 1, "99.99"), q("100", "101"), None, "ok"),
    ("sell stop at bid", stop("sell", 1, "100.00"), q("100", "101"), None, WARN),
    ("sell stop at collar", stop("sell", 1, "110.00"), q("100", "111"), None, WARN),
    ("sell stop through", stop("sell", 1, "110.01"), q("100", "111"), None, REFUSE),
    # ADV: warn above FAT_FINGER_WARN_PCT_ADV (1 % of 10,000 = 100), refuse above MAX (500)
    ("adv below warn", limit("buy", 99, "1.00"), q("0.99", "1"), D(10000), "ok"),
    ("adv at warn", limit("buy", 100, "1.00"), q("0.99", "1"), D(10000), "ok"),
    ("adv above warn", limit("buy", 101, "1.00"), q("0.99", "1"), D(10000), WARN),
    ("adv below max", limit("buy", 499, "1.00"), q("0.99", "1"), D(10000), WARN),
    ("adv at max", limit("buy", 500, "1.00"), q("0.99", "1"), D(10000), WARN),
    ("adv above max", limit("buy", 501, "1.00"), q("0.99", "1"), D(10000), REFUSE),
    ("adv unknown", limit("buy", 501, "1.00"), q("0.99", "1"), None, "ok"),
    # quotes: a market order needs a fresh one; age AT the maximum is still fresh
    ("market no quote", market("buy", 1), None, None, REFUSE),
    ("market stale quote", market("buy", 1), q("99", "100", 60.001), None, REFUSE),
    ("market quote at max age", market("buy", 1), q("99", "100", 60.0), None, "ok"),
    ("market one-sided quote", market("buy", 1), q("99", "0"), None, REFUSE),
    ("limit without quote", limit("buy", 1, "100"), None, None, WARN),
    # market orders priced at the far side: ask for a buy, bid for a sell
    ("market buy at ask", market("buy", 50), q("100", "100.01"), None, WARN),
    ("market sell at bid", market("sell", 50), q("100", "100.01"), None, "ok"),
]


@pytest.mark.parametrize(
    ("name", "order", "quote", "adv", "tier"), CASES, ids=[c[0] for c in CASES]
)
def test_table(name, order, quote, adv, tier):
    verdict = judge(order, quote, adv)
    assert verdict.tier == tier, verdict.reasons
    assert (verdict.tier == "ok") == (verdict.reasons == ())
    assert len(verdict.reasons) == len(verdict.findings)


def test_notional_is_qty_times_limit_else_far_side():
    assert judge(limit("buy", 3, "10.50"), q("10", "11")).notional == D("31.50")
    assert judge(market("buy", 3), q("10", "11")).notional == D("33.00")
    assert judge(market("sell", 3), q("10", "11")).notional == D("30.00")
    assert judge(market("buy", 3), None).notional is None
    # a stop executes at or beyond its stop: the larger of stop and far side
    assert judge(stop("buy", 2, "12"), q("10", "11")).notional == D("24.00")
    assert judge(stop("buy", 2, "12"), None).notional == D("24.00")


def test_every_reason_is_listed_and_names_its_limit():
    verdict = judge(limit("buy", 1001, "20.00"), q("19.9", "20"), D(20000))
    assert verdict.tier == REFUSE  # 1001 / 20000 = 5.005 % of ADV
    limits = [f.limit for f in verdict.findings]
    assert limits == ["step_up_notional", "warn_qty", "max_pct_adv"]
    assert "notional $20,020.00 exceeds the step-up threshold $10,000.00" in verdict.reasons[0]
    assert "qty 1,001 shares exceeds the warning threshold 1,000 shares" in verdict.reasons[1]
    assert "above the maximum 5 %" in verdict.reasons[2]
    assert verdict.pct_adv == D(1001) / D(20000)


def test_collar_reason_states_the_bound():
    (reason,) = judge(limit("buy", 1, "110.01"), q("99", "100")).reasons
    assert reason == (
        "buy limit $110.01 is more than 10 % above the ask $100.00 (price collar: at most $110.00)"
    )


def test_twap_size_tiers_judge_the_slice_and_adv_the_total():
    slice_ok = limit("buy", 100, "1.00", total_qty=501)
    assert judge(slice_ok, q("0.99", "1"), D(10000)).tier == REFUSE  # the total is 5.01 % of ADV
    small_total = limit("buy", 1001, "1.00", total_qty=1001)
    assert [f.limit for f in judge(small_total, q("0.99", "1")).findings] == ["warn_qty"]
    assert judge(limit("buy", 100, "1.00", total_qty=100_000), q("0.99", "1")).tier == "ok"


def test_per_symbol_thresholds_apply():
    tight = Thresholds(D("100"), 10, D("200"), D("0.01"), D("0.001"), D("0.002"))
    assert judge(limit("buy", 1, "150"), q("149", "150"), thresholds=tight).tier == WARN
    assert judge(limit("buy", 1, "151.51"), q("149", "150"), thresholds=tight).tier == REFUSE


def test_tier_order():
    assert TIERS == ("ok", "warn", "step_up", "refuse")
    assert [tier_rank(t) for t in TIERS] == [0, 1, 2, 3]
    assert tier_at_most("warn", "step_up") and not tier_at_most("step_up", "warn")
    with pytest.raises(ValueError):
        tier_rank("bogus")


@given(
    small=st.integers(min_value=1, max_value=5000),
    extra=st.integers(min_value=0, max_value=5000),
    ask=st.decimals(min_value="0.01", max_value="500", places=2),
)
def test_a_larger_order_is_never_judged_milder(small, extra, ask):
    quote = FatFingerQuote(bid=ask, ask=ask, age_seconds=0)
    a = judge(market("buy", small), quote, D(100_000))
    b = judge(market("buy", small + extra), quote, D(100_000))
    assert tier_rank(b.tier) >= tier_rank(a.tier)
