"""Manual orders: what the admin's "Place order" page does (issue 12), behind a thin view.

Two steps, and the server decides both from fresh data:

1. ``manual_review``: a fresh quote, the fat-finger verdict (``orders.fat_finger_checks``),
   position, working orders and limits, and a signed review token that binds the terms, the
   form's nonce and the tier the operator was shown.
2. ``manual_place``: judged AGAIN with a fresh quote; nothing from the review page is trusted
   but the signed token, and that only to know what the operator was shown. A tier above the
   one shown asks again; ``warn`` needs the confirm box, ``step_up`` also a fresh OTP code from
   the operator's own device; ``refuse`` never goes out. Then the ONE submit path
   (``order_submit`` / ``plan_create``, origin ``admin``, ``confirmed_tier`` set only here),
   with the audit row written in the order's own transaction.

Idempotency: the form's nonce joins the client_order_id (``OrderIntent.request_key``), so a
double click or a re-POST of one form is one order, while a new form is a new order.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core import signing
from django.utils import timezone

from marketdata.quotes import quote_latest
from orders import risk
from orders.fat_finger import REFUSE, STEP_UP, WARN, tier_rank
from orders.fat_finger_checks import FatFingerAssessment, fat_finger_assess
from orders.limits import EffectiveLimits, effective_limits, fat_finger_thresholds
from orders.models import Order, Origin, SlicingPlan
from orders.plans import PlanOutcome, plan_create, plan_key, plan_sizing
from orders.selectors import symbol_working_orders
from orders.services import SubmitOutcome, order_client_id, order_submit
from orders.status import OrderStatus
from tradeops import metrics
from tradeops.audit import audit_record
from tradeops.errors import PermissionDenied, RiskRejected, ServiceUnavailable, TradeOpsError
from tradeops.otp import StepUp, step_up_verify

logger = logging.getLogger(__name__)

REVIEW_SALT = "orders.manual.review"
# The step-up of an order above the fat-finger step-up threshold (tradeops.otp.STEP_UP_ACTIONS).
STEP_UP_ACTION = "order.place_large"
# A review older than this is shown again: the operator confirms what is on the screen now.
REVIEW_MAX_AGE_SECONDS = 600

S = OrderStatus


@dataclass(frozen=True)
class ManualRequest:
    """The operator's order (or TWAP plan) as the form parsed it; ``intent.request_key`` is
    the form's nonce."""

    intent: risk.OrderIntent
    duration_minutes: int | None = None
    interval_seconds: int | None = None

    @property
    def is_plan(self) -> bool:
        return self.duration_minutes is not None

    def fields(self) -> dict[str, Any]:
        """The terms as the form names them (what the review token binds and the audit
        records)."""
        i = self.intent
        return {
            "strategy": i.strategy_id,
            "symbol": i.symbol,
            "side": i.side,
            "qty": i.qty,
            "type": i.order_type,
            "limit_price": None if i.limit_price is None else str(i.limit_price),
            "stop_price": None if i.stop_price is None else str(i.stop_price),
            "time_in_force": i.time_in_force,
            "duration_minutes": self.duration_minutes,
            "interval_seconds": self.interval_seconds,
            "nonce": i.request_key,
        }


@dataclass(frozen=True)
class MarketView:
    """What the operator sees next to the order: the live quote (or why there is none),
    position and working orders, the effective limits and fat-finger thresholds."""

    symbol: str
    quote: Any
    quote_problem: str
    exposure: risk.Exposure
    working: list[Order]
    limits: EffectiveLimits
    thresholds: Any = None


def manual_market(symbol: str) -> MarketView:
    """The market panel of the order form, before there is an order to judge."""
    quote, problem = None, ""
    try:
        quote = quote_latest(symbol)
    except TradeOpsError as exc:  # stale, unavailable, not a symbol
        problem = exc.message
    return MarketView(
        symbol=symbol,
        quote=quote,
        quote_problem=problem,
        exposure=risk.symbol_exposure(symbol),
        working=symbol_working_orders(symbol),
        limits=effective_limits(symbol),
        thresholds=fat_finger_thresholds(symbol),
    )


@dataclass(frozen=True)
class ManualReview:
    request: ManualRequest
    assessment: FatFingerAssessment
    market: MarketView
    largest_slice: int | None
    token: str

    @property
    def tier(self) -> str:
        return self.assessment.verdict.tier

    @property
    def needs_confirm(self) -> bool:
        return self.tier in (WARN, STEP_UP)

    @property
    def needs_otp(self) -> bool:
        return self.tier == STEP_UP

    @property
    def refused(self) -> bool:
        return self.tier == REFUSE


@dataclass
class ManualResult:
    """``order``/``plan`` when one was placed (or an earlier identical POST had placed it);
    otherwise ``review`` to show again, with ``errors`` saying why."""

    order: Order | None = None
    plan: SlicingPlan | None = None
    replayed: bool = False
    review: ManualReview | None = None
    errors: list[str] = field(default_factory=list)
    outcome: str = ""


def manual_review(*, request: ManualRequest, user: Any) -> ManualReview:
    """Judge the order now, with a fresh quote, and sign what the operator will be shown."""
    intent, largest = _judged_intent(request)
    assessment = fat_finger_assess(intent)
    token = signing.dumps(
        {"fields": request.fields(), "tier": assessment.verdict.tier, "user": user.pk},
        salt=REVIEW_SALT,
    )
    market = MarketView(
        symbol=intent.symbol,
        quote=assessment.quote,
        quote_problem="" if assessment.quote is not None else "; ".join(_quote_reasons(assessment)),
        exposure=risk.symbol_exposure(intent.symbol),
        working=symbol_working_orders(intent.symbol),
        limits=assessment.limits,
        thresholds=assessment.thresholds,
    )
    return ManualReview(
        request=request, assessment=assessment, market=market, largest_slice=largest, token=token
    )


def _quote_reasons(assessment: FatFingerAssessment) -> list[str]:
    found = [f.message for f in assessment.verdict.findings if f.limit == "quote"]
    return found or ["no fresh quote"]


def manual_existing(request: ManualRequest) -> Order | SlicingPlan | None:
    """What an earlier POST of the same form placed (same terms and nonce today), if any."""
    now = timezone.now()
    if request.is_plan:
        key = plan_key(
            request.intent,
            duration_minutes=request.duration_minutes or 0,
            interval_seconds=request.interval_seconds or 0,
            now=now,
        )
        return SlicingPlan.objects.filter(key=key).first()
    return Order.objects.filter(client_order_id=order_client_id(request.intent, now)).first()


def manual_place(
    *,
    request: ManualRequest,
    user: Any,
    token: str,
    confirmed: bool,
    otp_token: str,
    session: Any = None,
) -> ManualResult:
    """Place the operator's order if the FRESH verdict's demands are met (see the module
    docstring); otherwise return a new review saying why. Never raises for a refusal the
    operator can act on: the pre-trade pipeline's answer comes back as ``errors``."""
    existing = manual_existing(request)
    if existing is not None:  # a double click, a re-POST: the first one's result
        _count("replayed")
        return _placed(existing, replayed=True, outcome="replayed")
    shown = _shown_tier(token, request=request, user=user)
    review = manual_review(request=request, user=user)
    problem = _unmet_demand(review, shown=shown, confirmed=confirmed)
    if problem is not None:
        outcome = "refused" if review.refused else "asked_again"
        _count(outcome)
        return ManualResult(review=review, errors=[problem], outcome=outcome)
    step_up: StepUp | None = None
    if review.needs_otp:
        try:  # a wrong code is audited and counted by step_up_verify (its own transaction)
            step_up = step_up_verify(
                user=user, token=otp_token, action=STEP_UP_ACTION, session=session
            )
        except PermissionDenied as exc:
            _count("step_up_failed" if exc.code == "otp_invalid" else "asked_again")
            return ManualResult(
                review=review, errors=[f"{exc.message} Nothing was sent."], outcome=exc.code
            )
    return _submit(review, user=user, step_up=step_up)


# --- steps --------------------------------------------------------------------------------
def _judged_intent(request: ManualRequest) -> tuple[risk.OrderIntent, int | None]:
    """The intent the checks judge: a TWAP plan on its largest slice for the size tiers and
    on its total for the ADV tier (``plan_create`` judges it the same way)."""
    intent = dataclasses.replace(request.intent, origin=Origin.ADMIN)
    if not request.is_plan:
        return intent, None
    _, sliced, judged = plan_sizing(
        intent,
        duration_minutes=request.duration_minutes or 0,
        interval_seconds=request.interval_seconds or 0,
        now=timezone.now(),
    )
    return judged, sliced.largest_slice


def _shown_tier(token: str, *, request: ManualRequest, user: Any) -> str | None:
    """The tier the operator's review page showed for exactly these terms, or None (no
    review, an expired one, another user's, other terms: it shows nothing trusted)."""
    try:
        data = signing.loads(token or "", salt=REVIEW_SALT, max_age=REVIEW_MAX_AGE_SECONDS)
    except signing.BadSignature:
        return None
    if data.get("user") != user.pk or data.get("fields") != request.fields():
        return None
    return data.get("tier")


def _unmet_demand(review: ManualReview, *, shown: str | None, confirmed: bool) -> str | None:
    if review.refused:
        return "Refused: " + "; ".join(review.assessment.verdict.reasons)
    if shown is None:
        return "Review the order before placing it (the review expired or the order changed)."
    if tier_rank(review.tier) > tier_rank(shown):
        return (
            f"The market moved: this order is now '{review.tier}' (you reviewed it as "
            f"'{shown}'). Review it again."
        )
    if review.needs_confirm and not confirmed:
        return "Tick the box to confirm this order."
    return None


def _submit(review: ManualReview, *, user: Any, step_up: StepUp | None) -> ManualResult:
    request = review.request
    intent = dataclasses.replace(request.intent, origin=Origin.ADMIN, confirmed_tier=review.tier)

    def audit(outcome: SubmitOutcome | PlanOutcome) -> None:
        placed = outcome.plan if isinstance(outcome, PlanOutcome) else outcome.order
        if isinstance(outcome, SubmitOutcome) and not (outcome.created or outcome.resent):
            return
        if isinstance(outcome, PlanOutcome) and not outcome.created:
            return
        audit_record(
            actor=user,
            action="order.manual_place",
            object_type="plan" if isinstance(placed, SlicingPlan) else "order",
            object_id=placed.pk if isinstance(placed, SlicingPlan) else placed.client_order_id,
            reason=f"confirmed at tier {review.tier}",
            after={
                "order": request.fields(),
                **_verdict_json(review),
                "confirmed_tier": review.tier,
                "step_up_verified": step_up is not None,
                "step_up": None if step_up is None else step_up.as_audit(),
            },
        )

    try:
        if request.is_plan:
            plan_outcome = plan_create(
                request=intent,
                duration_minutes=request.duration_minutes or 0,
                interval_seconds=request.interval_seconds or 0,
                actor=user,
                on_write=audit,
            )
            replayed = not plan_outcome.created
            result = _placed(plan_outcome.plan, replayed=replayed)
        else:
            outcome = order_submit(request=intent, actor=user, on_write=audit)
            replayed = not (outcome.created or outcome.resent)
            result = _placed(outcome.order, replayed=replayed)
    except (RiskRejected, ServiceUnavailable) as exc:
        return _refused_by_pipeline(review, exc, user=user)
    _count("replayed" if replayed else result.outcome)
    return result


def _refused_by_pipeline(review: ManualReview, exc: TradeOpsError, *, user: Any) -> ManualResult:
    """The pre-trade pipeline said no (a risk limit, the gate, the kill switch, or the
    fat-finger check under the lock with a newer quote): show the review again with why. A
    fat-finger refusal means the price moved between the two reads: a new review, at the new
    tier, asks again."""
    _count("refused")
    message = f"Not placed ({exc.code}): {exc.message}"
    if exc.code == "fat_finger":
        message += " The price moved since the review: check it and confirm again."
        review = manual_review(request=review.request, user=user)
    return ManualResult(review=review, errors=[message], outcome="refused")


def _placed(placed: Order | SlicingPlan, *, replayed: bool, outcome: str = "") -> ManualResult:
    if isinstance(placed, SlicingPlan):
        return ManualResult(plan=placed, replayed=replayed, outcome=outcome or "planned")
    if not outcome:
        outcome = {
            S.SUBMITTED_UNCONFIRMED: "unconfirmed",
            S.REJECTED: "rejected",
            S.PENDING_NEW: "unconfirmed",
        }.get(placed.status, "submitted")
    return ManualResult(order=placed, replayed=replayed, outcome=outcome)


def _verdict_json(review: ManualReview) -> dict[str, Any]:
    a = review.assessment
    quote = a.quote
    return {
        "verdict": {
            "tier": a.verdict.tier,
            "reasons": list(a.verdict.reasons),
            "notional": _text(a.verdict.notional),
            "pct_adv": _text(a.verdict.pct_adv),
        },
        "quote": None
        if quote is None
        else {
            "bid": str(quote.bid),
            "ask": str(quote.ask),
            "timestamp": quote.timestamp.isoformat(),
            "age_seconds": quote.age_seconds,
            "source": quote.source,
        },
        "adv": _text(a.adv),
    }


def _text(value: Decimal | int | None) -> str | None:
    return None if value is None else str(value)


def _count(outcome: str) -> None:
    metrics.MANUAL_ORDERS.labels(outcome).inc()
