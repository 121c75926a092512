"""Pre-trade risk checks: a pipeline of small functions listed in settings, like MIDDLEWARE.

Two phases, because no network call may happen inside a transaction:
1. ``PRETRADE_PREPARE`` hooks run first, outside any transaction. They may ask the network
   (a reference price, the live broker position while the gate is closed) and store what they
   learn on the context.
2. ``PRETRADE_CHECKS`` run inside the transaction that inserts the order, under a row lock on
   the symbol's RiskLimit row, so two concurrent orders cannot jointly breach a limit. Each
   returns a Rejection or None. The first rejection wins.

``orders`` owns the pipeline and its own checks; other apps add theirs through settings (the
reconciliation gate, quarantine, orphan exposure), so ``orders`` never imports them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import CharField, F, Sum, Value
from django.utils.module_loading import import_string

from marketdata.quotes import quote_latest
from orders.fat_finger import Thresholds
from orders.limits import EffectiveLimits, limits_of_locked
from orders.models import Order, OrderTerms, Position, RiskLimit, TradingSwitch
from orders.positions import ReduceOnlyVerdict, reduce_only_verdict
from tradeops import metrics
from tradeops.compiled import CompiledQuery
from tradeops.errors import RiskRejected, ServiceUnavailable, TradeOpsError

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class OrderIntent:
    """What the checks see of an order about to be placed."""

    strategy_id: str
    symbol: str
    side: str
    qty: int
    order_type: str
    time_in_force: str
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    origin: str = "api"
    # The highest fat-finger tier the submitter has confirmed (orders.fat_finger.TIERS). Only
    # the admin's Place order page sets it, after its own server-side confirmation (a ticked
    # box; a verified OTP code for step_up); an operator's order above it is refused.
    confirmed_tier: str = "ok"
    # The size the per-order limits judge: a TWAP plan is judged on its total ``qty`` for
    # exposure and on its largest slice here, because each slice is a separate order.
    size_qty: int | None = None
    # Part of the idempotency key when set (the admin's form nonce, see ``orders.ids``).
    request_key: str = ""

    @property
    def order_size(self) -> int:
        return self.qty if self.size_qty is None else self.size_qty

    @classmethod
    def from_request(cls, data: Mapping[str, Any], *, strategy_id: str, origin: str) -> OrderIntent:
        """The intent of an order request as the API's serializer validated it (a TWAP plan's
        request has the same order fields). The wire calls the order type ``type``."""
        return cls(
            strategy_id=strategy_id,
            symbol=data["symbol"],
            side=data["side"],
            qty=data["qty"],
            order_type=data["type"],
            time_in_force=data["time_in_force"],
            limit_price=data.get("limit_price"),
            stop_price=data.get("stop_price"),
            origin=origin,
        )

    def terms(self) -> dict[str, Any]:
        """The order terms as model fields (``OrderTerms.TERMS``): what an ``Order`` or a
        ``SlicingPlan`` (and each of its slices, with its own ``qty``) is created with."""
        return {name: getattr(self, name) for name in OrderTerms.TERMS}


@dataclass(frozen=True)
class Rejection:
    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    unavailable: bool = False  # 503 "try later" rather than 422 "refused"
    retry_after: int | None = None

    def as_error(self) -> TradeOpsError:
        cls = ServiceUnavailable if self.unavailable else RiskRejected
        return cls(self.message, code=self.code, details=self.details, retry_after=self.retry_after)


@dataclass(frozen=True)
class Exposure:
    """What the database knows: net position and the unfilled remainder of working orders."""

    position: int
    open_buy: int
    open_sell: int


@dataclass
class RiskContext:
    now: datetime
    reference_price: Decimal | None = None
    # Why there is no reference price (a market order without a fresh quote): the rejection.
    reference_price_rejection: Rejection | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    # Filled in under the lock:
    limits: EffectiveLimits | None = None
    exposure: Exposure | None = None
    extra_buy: int = 0
    extra_sell: int = 0
    # Read under the lock: every switch (missing = engaged), the fat-finger thresholds.
    switches: dict[str, bool] | None = None
    thresholds: Thresholds | None = None
    warnings: list[str] = field(default_factory=list)

    def reduce_only(self, intent: OrderIntent) -> ReduceOnlyVerdict:
        """Reduce-only judged from the database view (the gate judges from live data)."""
        assert self.exposure is not None  # noqa: S101 - set by run_checks before any check
        e = self.exposure
        return reduce_only_verdict(
            position=e.position,
            open_buy=e.open_buy,
            open_sell=e.open_sell,
            side=intent.side,
            qty=intent.qty,
        )


Check = Callable[[OrderIntent, RiskContext], Rejection | None]
Prepare = Callable[[OrderIntent, RiskContext], None]


# --- selectors used by the checks ------------------------------------------------------------
def switch_engaged(name: str) -> bool:
    """A missing switch row counts as engaged: fail closed."""
    row = TradingSwitch.objects.filter(name=name).values_list("engaged", flat=True).first()
    return True if row is None else bool(row)


_SWITCHES = CompiledQuery(lambda: TradingSwitch.objects.order_by().values_list("name", "engaged"))


def switches_engaged() -> dict[str, bool]:
    """Every switch in one query; look names up with ``.get(name, True)`` (missing = engaged)."""
    return dict(_SWITCHES.rows())


def _exposure_query(symbol: Any) -> Any:
    position = (
        Position.objects.filter(symbol=symbol)
        .order_by()
        .annotate(kind=Value("position"), remaining=F("qty"))
        .values_list("kind", "remaining")
    )
    working = (
        Order.objects.open()
        .filter(symbol=symbol)
        .order_by()  # SQLite refuses ORDER BY inside a compound statement's parts
        .annotate(kind=F("side"))
        .values("kind")
        .annotate(remaining=Sum(F("qty") - F("filled_qty")))
        .values_list("kind", "remaining")
    )
    return position.union(working, all=True)


_EXPOSURE = CompiledQuery(_exposure_query, symbol=CharField())
_LOCK_SYMBOL = CompiledQuery(
    lambda symbol: RiskLimit.objects.select_for_update().filter(symbol=symbol)[:1],
    model=True,
    symbol=CharField(),
)


def symbol_exposure(symbol: str) -> Exposure:
    """Position and working orders of a symbol in ONE query (a UNION ALL of the position row
    and the open orders' remainder per side)."""
    by_kind = {kind: int(remaining or 0) for kind, remaining in _EXPOSURE.rows(symbol=symbol)}
    return Exposure(
        position=by_kind.get("position", 0),
        open_buy=by_kind.get("buy", 0),
        open_sell=by_kind.get("sell", 0),
    )


def lock_symbol(symbol: str) -> tuple[EffectiveLimits, Thresholds]:
    """Serialise pre-trade checks per symbol on the symbol's RiskLimit row (created on first
    use with every field blank, i.e. inheriting the global limits), and return the limits and
    fat-finger thresholds in force. Needs a transaction.

    The locked row is read in the locking statement (PostgreSQL re-reads a row it waited for,
    so its fields are the committed ones); the global row after the lock is held."""
    row = _LOCK_SYMBOL.first(symbol=symbol)
    if row is None:  # first order of this symbol: insert its row (a rival may race us)
        RiskLimit.objects.get_or_create(symbol=symbol)
        row = RiskLimit.objects.select_for_update().get(symbol=symbol)
    return limits_of_locked(row)


# --- the pipeline --------------------------------------------------------------------------
def _load(paths: list[str]) -> list[Any]:
    return [import_string(path) for path in paths]


def prepare_context(intent: OrderIntent, now: datetime) -> RiskContext:
    """Phase 1, outside any transaction: the PRETRADE_PREPARE hooks."""
    ctx = RiskContext(now=now)
    for hook in _load(settings.PRETRADE_PREPARE):
        hook(intent, ctx)
    return ctx


def run_checks(intent: OrderIntent, ctx: RiskContext) -> None:
    """Phase 2, inside the insert's transaction, after ``lock_symbol``. Raises the first
    rejection as a TradeOpsError. ``ctx.limits`` is what ``lock_symbol`` returned."""
    ctx.exposure = symbol_exposure(intent.symbol)
    ctx.switches = switches_engaged()
    for source in _load(settings.PRETRADE_EXPOSURE_SOURCES):
        buy, sell = source(intent.symbol, ctx)
        ctx.extra_buy += buy
        ctx.extra_sell += sell
    for check in _load(settings.PRETRADE_CHECKS):
        rejection = check(intent, ctx)
        if rejection is not None:
            raise rejection.as_error()


def pretrade_write(
    intent: OrderIntent,
    ctx: RiskContext,
    *,
    write: Callable[[], T],
    replay: Callable[[], T],
    label: str,
    already_done: Callable[[], T | None] = lambda: None,
    on_write: Callable[[T], None] | None = None,
) -> T:
    """The invariant of every write that puts new risk on the book (an order, a re-send, a
    TWAP plan with its slices): in ONE transaction, under the symbol's lock, run the checks,
    then ``write``. Phase 1 (``prepare_context``) must have run before, outside it.

    Idempotency lives in unique keys: when the same request inserts concurrently, one insert
    wins and the other's IntegrityError is answered with the winner's row (``replay``).
    ``already_done`` is asked under the lock, before the checks: a result there (a rival
    request got there first) is the answer, not checked again. A refusal is counted by its
    code, logged under ``label`` and raised. ``on_write`` gets ``write``'s result inside the
    same transaction (the admin's confirmation audit commits or rolls back with the order)."""
    try:
        with transaction.atomic():
            ctx.limits, ctx.thresholds = lock_symbol(intent.symbol)
            done = already_done()
            if done is not None:
                metrics.ORDERS_IDEMPOTENT_REPLAYS.inc()
                return done
            run_checks(intent, ctx)
            result = write()
            if on_write is not None:
                on_write(result)
            return result
    except IntegrityError:
        # The same request, concurrently: the other insert won; answer with its row.
        metrics.ORDERS_IDEMPOTENT_REPLAYS.inc()
        return replay()
    except (RiskRejected, ServiceUnavailable) as exc:
        metrics.ORDERS_REJECTED.labels(exc.code).inc()
        logger.info("%s refused by pre-trade checks: %s %s", label, exc.code, exc.message)
        raise


# --- prepare hooks -------------------------------------------------------------------------
def prepare_reference_price(intent: OrderIntent, ctx: RiskContext) -> None:
    """The price used for notional checks: the order's own limit/stop price, else (market
    orders) the mid of the latest quote from the QuoteClient, never older than
    QUOTE_MAX_AGE_SECONDS. Without one the order is refused 503 ``quote_stale`` /
    ``quote_unavailable`` by ``check_max_order_notional`` (in pipeline order, so a closed
    gate or an engaged switch still answers first)."""
    if intent.limit_price is not None or intent.stop_price is not None:
        ctx.reference_price = intent.limit_price or intent.stop_price
        return
    try:
        quote = quote_latest(intent.symbol)
    except ServiceUnavailable as exc:  # QuoteStale, QuoteUnavailable
        ctx.reference_price_rejection = Rejection(
            exc.code, exc.message, exc.details, unavailable=True, retry_after=exc.retry_after
        )
        return
    ctx.reference_price = quote.mid
    ctx.extras["quote"] = quote


# --- checks ------------------------------------------------------------------------------
def _halt_check(name: str, code: str, label: str) -> Check:
    def check(intent: OrderIntent, ctx: RiskContext) -> Rejection | None:
        engaged = switch_engaged(name) if ctx.switches is None else ctx.switches.get(name, True)
        if not engaged:
            return None
        verdict = ctx.reduce_only(intent)
        if verdict.allowed:
            ctx.warnings.append(f"{label} engaged: passed as reduce-only ({verdict.reason})")
            return None
        return Rejection(
            code,
            f"{label} is engaged: only cancels and reduce-only orders are accepted "
            f"({verdict.reason}).",
            {"switch": name},
            unavailable=True,
            retry_after=settings.GATE_RETRY_AFTER_SECONDS,
        )

    check.__name__ = f"check_{name}"
    return check


check_kill_switch = _halt_check(TradingSwitch.Name.KILL_SWITCH, "kill_switch", "The kill switch")
check_circuit_breaker = _halt_check(
    TradingSwitch.Name.CIRCUIT_BREAKER, "circuit_breaker", "The circuit breaker"
)


def check_max_order_qty(intent: OrderIntent, ctx: RiskContext) -> Rejection | None:
    assert ctx.limits is not None  # noqa: S101
    limit, size = ctx.limits.max_order_qty, intent.order_size
    if size > limit:
        what = "qty" if intent.size_qty is None else "largest slice qty"
        return Rejection(
            "risk_limit",
            f"{what} {size} exceeds the max order qty {limit} for {intent.symbol}.",
            {"limit": "max_order_qty", "value": limit, "qty": size},
        )
    return None


def check_max_order_notional(intent: OrderIntent, ctx: RiskContext) -> Rejection | None:
    assert ctx.limits is not None  # noqa: S101
    limit = ctx.limits.max_order_notional
    if ctx.reference_price is None:
        # Without a price the notional is unknown: refuse rather than guess (fail closed).
        return ctx.reference_price_rejection or Rejection(
            "quote_unavailable",
            "Cannot check the order's notional: no price.",
            {"limit": "max_order_notional"},
            unavailable=True,
            retry_after=settings.QUOTE_RETRY_AFTER_SECONDS,
        )
    notional = (ctx.reference_price * intent.order_size).quantize(settings.NOTIONAL_PLACES)
    if notional > limit:
        return Rejection(
            "risk_limit",
            f"notional {notional} exceeds the max order notional {limit} for {intent.symbol}.",
            {"limit": "max_order_notional", "value": str(limit), "notional": str(notional)},
        )
    return None


def check_position_limit(intent: OrderIntent, ctx: RiskContext) -> Rejection | None:
    """Worst case in the order's direction: position + working orders on that side + extra
    exposure (orphans) + this order must stay within max_position_qty."""
    assert ctx.limits is not None and ctx.exposure is not None  # noqa: S101
    e, limit = ctx.exposure, ctx.limits.max_position_qty
    if intent.side == "buy":
        worst = e.position + e.open_buy + ctx.extra_buy + intent.qty
    else:
        worst = -(e.position - e.open_sell - ctx.extra_sell - intent.qty)
    if worst > limit:
        direction = "long" if intent.side == "buy" else "short"
        other = ctx.extra_buy if intent.side == "buy" else ctx.extra_sell
        return Rejection(
            "risk_limit",
            f"a {direction} exposure of {worst} on {intent.symbol} would exceed the max position "
            f"{limit} (position {e.position}, working buys {e.open_buy}, working sells "
            f"{e.open_sell}, other exposure {other}).",
            {
                "limit": "max_position_qty",
                "value": limit,
                "projected": worst,
                "position": e.position,
                "open_buy": e.open_buy,
                "open_sell": e.open_sell,
                "extra_buy": ctx.extra_buy,
                "extra_sell": ctx.extra_sell,
            },
        )
    return None
