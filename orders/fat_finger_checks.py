"""The fat-finger policy (``orders.fat_finger``) in the pre-trade pipeline, for both doors.

- ``prepare_fat_finger`` (PRETRADE_PREPARE, outside any transaction: it may use the network):
  the latest fresh quote from the QuoteClient (the one ``prepare_reference_price`` read for
  a market order, else its own read) and the symbol's ADV (``marketdata.services.adv_get``,
  the TWAP liquidity cap's source: cached 24 h). Unknown ADV skips the ADV tier; no quote
  leaves a limit or stop order judged on its own price (warned) and a market order refused
  (the earlier 503 ``quote_stale`` answers it first).
- ``check_fat_finger`` (PRETRADE_CHECKS, last, under the symbol lock): thresholds read under
  the lock, the verdict counted (``fat_finger_verdicts_total{tier,origin}``), then judged:
  ``refuse`` -> 422 ``fat_finger``; an operator's (origin ``admin``) order whose tier is above
  its ``confirmed_tier`` -> 422 ``fat_finger`` naming the tier to confirm; a strategy's
  ``step_up`` order above its ``max_unconfirmed_notional`` -> 422 ``fat_finger`` (a strategy
  cannot type an OTP code); otherwise accepted, every reason added to the order's warnings.
- ``fat_finger_assess`` (the admin's review page): the same gathering and the same verdict,
  outside any transaction, with what the page shows beside it.

A TWAP plan's intent carries its largest slice as ``size_qty``: the size tiers judge that
slice (each slice is a separate order), the ADV tier the plan's total.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from marketdata.quotes import quote_latest
from marketdata.quoting import Quote
from marketdata.services import AdvUnavailable, adv_get
from orders.fat_finger import (
    OK,
    REFUSE,
    STEP_UP,
    TIERS,
    FatFingerOrder,
    FatFingerQuote,
    Thresholds,
    Verdict,
    fat_finger_evaluate,
    tier_at_most,
)
from orders.limits import EffectiveLimits, effective_limits, fat_finger_thresholds
from orders.models import Origin, Strategy
from orders.risk import OrderIntent, Rejection, RiskContext
from tradeops import metrics
from tradeops.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

QUOTE_KEY, ADV_KEY = "fat_finger_quote", "fat_finger_adv"


@dataclass(frozen=True)
class FatFingerAssessment:
    """What the admin's review step shows: the verdict and everything it was computed from.
    ``quote`` is the QuoteClient's quote (bid, ask, ``age_seconds``, ``source``) or None."""

    verdict: Verdict
    quote: Quote | None
    adv: Decimal | None
    thresholds: Thresholds
    limits: EffectiveLimits

    @property
    def tier(self) -> str:
        return self.verdict.tier


# --- gathering (network; outside any transaction) ---------------------------------------------
def fat_finger_quote(symbol: str) -> Quote | None:
    """The latest fresh quote, or None when there is none (stale or unavailable)."""
    try:
        return quote_latest(symbol)
    except ServiceUnavailable as exc:  # QuoteStale, QuoteUnavailable
        logger.info("fat-finger check for %s without a quote: %s", symbol, exc.message)
        return None


def fat_finger_adv(symbol: str, now: datetime) -> Decimal | None:
    """The symbol's 20-day ADV in shares (the TWAP cap's source, cached), None if unknown."""
    try:
        row, _cached = adv_get(symbol=symbol, now=now)
    except AdvUnavailable as exc:
        logger.info("fat-finger ADV tier skipped for %s: %s", symbol, exc)
        return None
    return Decimal(row.adv)


def prepare_fat_finger(intent: OrderIntent, ctx: RiskContext) -> None:
    if "quote" in ctx.extras or ctx.reference_price_rejection is not None:
        # A market order: prepare_reference_price has asked already (and found one or none).
        ctx.extras[QUOTE_KEY] = ctx.extras.get("quote")
    else:
        ctx.extras[QUOTE_KEY] = fat_finger_quote(intent.symbol)
    ctx.extras[ADV_KEY] = fat_finger_adv(intent.symbol, ctx.now)


# --- the verdict (no network) ---------------------------------------------------------------
def fat_finger_order(intent: OrderIntent) -> FatFingerOrder:
    return FatFingerOrder(
        side=intent.side,
        qty=intent.order_size,
        order_type=intent.order_type,
        limit_price=intent.limit_price,
        stop_price=intent.stop_price,
        total_qty=None if intent.size_qty is None else intent.qty,
    )


def fat_finger_verdict(
    intent: OrderIntent, quote: Quote | None, adv: Decimal | None, thresholds: Thresholds
) -> Verdict:
    judged_quote = None
    if quote is not None and quote.age_seconds is not None:
        judged_quote = FatFingerQuote(bid=quote.bid, ask=quote.ask, age_seconds=quote.age_seconds)
    return fat_finger_evaluate(
        fat_finger_order(intent),
        judged_quote,
        adv,
        thresholds,
        max_quote_age=settings.QUOTE_MAX_AGE_SECONDS,
    )


def metric_origin(intent: OrderIntent) -> str:
    return "admin" if intent.origin == Origin.ADMIN else "api"


def _details(verdict: Verdict, **extra: object) -> dict[str, object]:
    return {
        "tier": verdict.tier,
        "reasons": list(verdict.reasons),
        "limits": [f.limit for f in verdict.findings],
        "notional": None if verdict.notional is None else str(verdict.notional),
        "pct_adv": None
        if verdict.pct_adv is None
        else str(verdict.pct_adv.quantize(Decimal("1e-6"))),
        **extra,
    }


def strategy_unconfirmed_allowance(strategy_id: str, thresholds: Thresholds) -> Decimal:
    """The largest step-up-tier notional the strategy may place without a human's OTP."""
    allowance = (
        Strategy.objects.filter(pk=strategy_id)
        .values_list("max_unconfirmed_notional", flat=True)
        .first()
    )
    return thresholds.step_up_notional if allowance is None else allowance


def fat_finger_rejection(
    intent: OrderIntent, verdict: Verdict, thresholds: Thresholds
) -> Rejection | None:
    """The decision on a verdict (see the module docstring); None: accepted."""
    reasons = "; ".join(verdict.reasons)
    if verdict.tier == REFUSE:
        return Rejection(
            "fat_finger", f"Refused by the fat-finger policy: {reasons}.", _details(verdict)
        )
    if intent.origin == Origin.ADMIN:
        confirmed = intent.confirmed_tier if intent.confirmed_tier in TIERS else OK
        if tier_at_most(verdict.tier, confirmed):
            return None
        how = "a ticked confirmation" if verdict.tier != STEP_UP else "an OTP step-up"
        return Rejection(
            "fat_finger",
            f"This order needs the operator's confirmation of the '{verdict.tier}' tier ({how}, "
            f"on the admin's Place order page): {reasons}.",
            _details(verdict, confirm_tier=verdict.tier, confirmed_tier=confirmed),
        )
    if verdict.tier != STEP_UP:
        return None
    allowance = strategy_unconfirmed_allowance(intent.strategy_id, thresholds)
    assert verdict.notional is not None  # noqa: S101 - step_up comes from the notional only
    if verdict.notional <= allowance:
        return None
    return Rejection(
        "fat_finger",
        f"This order needs an operator's OTP confirmation (step-up): {reasons}; strategy "
        f"'{intent.strategy_id}' may place such orders only up to its max unconfirmed notional "
        f"${allowance:,}.",
        _details(verdict, max_unconfirmed_notional=str(allowance)),
    )


def check_fat_finger(intent: OrderIntent, ctx: RiskContext) -> Rejection | None:
    thresholds = ctx.thresholds or fat_finger_thresholds(intent.symbol)  # read with the lock
    verdict = fat_finger_verdict(
        intent, ctx.extras.get(QUOTE_KEY), ctx.extras.get(ADV_KEY), thresholds
    )
    metrics.FAT_FINGER_VERDICTS.labels(verdict.tier, metric_origin(intent)).inc()
    ctx.extras["fat_finger_verdict"] = verdict
    rejection = fat_finger_rejection(intent, verdict, thresholds)
    if rejection is None:
        ctx.warnings.extend(verdict.reasons)
    return rejection


# --- the admin's review step --------------------------------------------------------------------
def fat_finger_assess(intent: OrderIntent, *, now: datetime | None = None) -> FatFingerAssessment:
    """The verdict the pre-trade check would reach now, with its inputs, for the admin's
    review page. Outside any transaction (it may ask the network). Advisory only: the submit
    runs the check again with a fresh quote, under the lock."""
    now = now or timezone.now()
    thresholds = fat_finger_thresholds(intent.symbol)
    quote, adv = fat_finger_quote(intent.symbol), fat_finger_adv(intent.symbol, now)
    return FatFingerAssessment(
        verdict=fat_finger_verdict(intent, quote, adv, thresholds),
        quote=quote,
        adv=adv,
        thresholds=thresholds,
        limits=effective_limits(intent.symbol),
    )
