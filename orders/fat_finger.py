"""The fat-finger policy (issue 12): is this order so large, or so far from the market, that a
human must look twice, prove it is them, or not send it at all?

Pure: plain values in, a ``Verdict`` out; no ORM, no clock, no network. The same function
judges the API's pre-trade check (``orders.fat_finger_checks``) and the admin's review page,
so both doors give the same answer for the same order, quote and ADV.

Tiers, from mild to severe (``TIERS``): ``ok`` < ``warn`` (a human confirms; the API accepts
it and returns the reasons as warnings) < ``step_up`` (a human confirms with a fresh OTP code;
a strategy only within its ``max_unconfirmed_notional``) < ``refuse`` (never sent). The
verdict's tier is the most severe finding; ``reasons`` lists every finding, so the operator
sees all that is odd about an order, not just the worst.

Every limit is strict: a value AT a threshold passes it; only above it counts (the table test
covers just below / at / just above each one). The risk limits (max order qty / notional,
position) stay the hard ceiling above all tiers: they are separate checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

OK, WARN, STEP_UP, REFUSE = "ok", "warn", "step_up", "refuse"
TIERS: tuple[str, ...] = (OK, WARN, STEP_UP, REFUSE)

CENT = Decimal("0.01")


def tier_rank(tier: str) -> int:
    """0 for ``ok`` up to 3 for ``refuse``; an unknown tier raises ValueError."""
    return TIERS.index(tier)


def tier_at_most(tier: str, ceiling: str) -> bool:
    """Whether ``tier`` is no more severe than ``ceiling`` (e.g. what was confirmed)."""
    return tier_rank(tier) <= tier_rank(ceiling)


@dataclass(frozen=True)
class Thresholds:
    """Effective thresholds for one symbol (settings, overridden per symbol in RiskLimit)."""

    warn_notional: Decimal
    warn_qty: int
    step_up_notional: Decimal
    collar_pct: Decimal
    warn_pct_adv: Decimal
    max_pct_adv: Decimal


@dataclass(frozen=True)
class FatFingerOrder:
    """The order as the policy sees it. ``qty`` is what the size tiers judge (a TWAP plan's
    largest slice: each slice is a separate order); ``total_qty`` is what the ADV tier
    judges (the plan's total: it all goes through the market today). None: ``qty``."""

    side: str  # buy | sell
    qty: int
    order_type: str  # market | limit | stop | stop_limit
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    total_qty: int | None = None

    @property
    def adv_qty(self) -> int:
        return self.qty if self.total_qty is None else self.total_qty


@dataclass(frozen=True)
class FatFingerQuote:
    bid: Decimal
    ask: Decimal
    age_seconds: float


@dataclass(frozen=True)
class Finding:
    """One limit the order exceeds: its tier, the limit's name (a Thresholds field, or
    ``quote``) and a sentence for a human."""

    tier: str
    limit: str
    message: str


@dataclass(frozen=True)
class Verdict:
    tier: str  # ok | warn | step_up | refuse
    reasons: tuple[str, ...]
    notional: Decimal | None
    pct_adv: Decimal | None
    findings: tuple[Finding, ...] = ()


def _money(value: Decimal) -> str:
    return f"${value.quantize(CENT):,}"


def _pct(fraction: Decimal) -> str:
    return f"{(fraction * 100).normalize():f} %"


def _far_side(order: FatFingerOrder, quote: FatFingerQuote | None) -> Decimal | None:
    """The price a marketable order pays: the ask for a buy, the bid for a sell (None when
    there is no fresh quote or that side is empty)."""
    if quote is None:
        return None
    price = quote.ask if order.side == "buy" else quote.bid
    return price if price > 0 else None


def _notional_price(order: FatFingerOrder, far: Decimal | None) -> Decimal | None:
    """The order's own limit price; else (stop) the stop or the far side, whichever is
    larger (a stop executes at or beyond its stop price); else the far side."""
    if order.limit_price is not None:
        return order.limit_price
    if order.stop_price is not None:
        return order.stop_price if far is None else max(order.stop_price, far)
    return far


def _size_findings(order: FatFingerOrder, notional: Decimal | None, t: Thresholds) -> list[Finding]:
    found = []
    if notional is not None and notional > t.step_up_notional:
        found.append(
            Finding(
                STEP_UP,
                "step_up_notional",
                f"notional {_money(notional)} exceeds the step-up threshold "
                f"{_money(t.step_up_notional)}",
            )
        )
    elif notional is not None and notional > t.warn_notional:
        found.append(
            Finding(
                WARN,
                "warn_notional",
                f"notional {_money(notional)} exceeds the warning threshold "
                f"{_money(t.warn_notional)}",
            )
        )
    if order.qty > t.warn_qty:
        found.append(
            Finding(
                WARN,
                "warn_qty",
                f"qty {order.qty:,} shares exceeds the warning threshold {t.warn_qty:,} shares",
            )
        )
    return found


def _limit_collar(order: FatFingerOrder, quote: FatFingerQuote, collar: Decimal) -> Finding | None:
    """A limit more than ``collar`` through the price it becomes live at: the far side, or a
    stop-limit's stop when that is further out (a buy stop-limit above the market is live
    only once the price reaches its stop)."""
    limit, stop = order.limit_price, order.stop_price
    if limit is None:
        return None
    if order.side == "buy":
        if quote.ask <= 0:
            return None
        ref, ref_name = quote.ask, f"the ask {_money(quote.ask)}"
        if stop is not None and stop > ref:
            ref, ref_name = stop, f"the stop {_money(stop)}"
        ceiling = ref * (1 + collar)
        if limit > ceiling:
            return Finding(
                REFUSE,
                "collar_pct",
                f"buy limit {_money(limit)} is more than {_pct(collar)} above {ref_name} "
                f"(price collar: at most {_money(ceiling)})",
            )
        return None
    if quote.bid <= 0:
        return None
    ref, ref_name = quote.bid, f"the bid {_money(quote.bid)}"
    if stop is not None and stop < ref:
        ref, ref_name = stop, f"the stop {_money(stop)}"
    floor = ref * (1 - collar)
    if limit < floor:
        return Finding(
            REFUSE,
            "collar_pct",
            f"sell limit {_money(limit)} is more than {_pct(collar)} below {ref_name} "
            f"(price collar: at least {_money(floor)})",
        )
    return None


def _stop_collar(order: FatFingerOrder, quote: FatFingerQuote, collar: Decimal) -> Finding | None:
    """A buy stop at or below the ask (a sell stop at or above the bid) triggers at once:
    ``warn``; more than ``collar`` through the market: ``refuse`` (it was meant elsewhere)."""
    stop = order.stop_price
    if stop is None:
        return None
    if order.side == "buy":
        market, name = quote.ask, "ask"
        if market <= 0 or stop > market:
            return None
        bound = market * (1 - collar)
        far, where = stop < bound, "below"
    else:
        market, name = quote.bid, "bid"
        if market <= 0 or stop < market:
            return None
        bound = market * (1 + collar)
        far, where = stop > bound, "above"
    if far:
        return Finding(
            REFUSE,
            "collar_pct",
            f"{order.side} stop {_money(stop)} is more than {_pct(collar)} {where} the {name} "
            f"{_money(market)}: it would trigger at once far through the market (price "
            f"collar: {_money(bound)})",
        )
    return Finding(
        WARN,
        "stop_triggers_at_once",
        f"{order.side} stop {_money(stop)} is at or {where} the {name} {_money(market)}: "
        "it triggers at once",
    )


def _adv_findings(order: FatFingerOrder, adv: Decimal | None, t: Thresholds) -> list[Finding]:
    if adv is None or adv <= 0:
        return []
    share = Decimal(order.adv_qty) / adv
    what = f"{order.adv_qty:,} shares are {_pct(share.quantize(Decimal('0.0001')))} of the ADV"
    if share > t.max_pct_adv:
        return [
            Finding(
                REFUSE,
                "max_pct_adv",
                f"{what} ({adv:,} shares a day), above the maximum {_pct(t.max_pct_adv)}",
            )
        ]
    if share > t.warn_pct_adv:
        return [
            Finding(
                WARN,
                "warn_pct_adv",
                f"{what} ({adv:,} shares a day), above the warning share {_pct(t.warn_pct_adv)}",
            )
        ]
    return []


def fat_finger_evaluate(
    order: FatFingerOrder,
    quote: FatFingerQuote | None,
    adv: Decimal | None,
    thresholds: Thresholds,
    *,
    max_quote_age: float,
) -> Verdict:
    """Judge one order. ``quote`` older than ``max_quote_age`` seconds counts as none: a
    market order without a fresh quote is refused (its price is unknown); a limit or stop
    order without one is judged on its own price and warned that the collar was not
    checked. ``adv`` None (unknown) skips the ADV tier."""
    fresh = quote if quote is not None and quote.age_seconds <= max_quote_age else None
    far = _far_side(order, fresh)
    price = _notional_price(order, far)
    notional = None if price is None else (price * order.qty).quantize(CENT)
    findings: list[Finding] = []
    if price is None:
        findings.append(
            Finding(
                REFUSE,
                "quote",
                f"market order without a fresh quote (none within {max_quote_age:g} s): "
                "its price is unknown",
            )
        )
    elif far is None:
        findings.append(
            Finding(
                WARN,
                "quote",
                f"no fresh quote (none within {max_quote_age:g} s): the price collar was "
                "not checked",
            )
        )
    findings += _size_findings(order, notional, thresholds)
    if far is not None and fresh is not None:
        for finding in (
            _limit_collar(order, fresh, thresholds.collar_pct),
            _stop_collar(order, fresh, thresholds.collar_pct),
        ):
            if finding is not None:
                findings.append(finding)
    findings += _adv_findings(order, adv, thresholds)
    pct_adv = None if adv is None or adv <= 0 else Decimal(order.adv_qty) / adv
    tier = max((f.tier for f in findings), key=tier_rank, default=OK)
    return Verdict(
        tier=tier,
        reasons=tuple(f.message for f in findings),
        notional=notional,
        pct_adv=pct_adv,
        findings=tuple(findings),
    )
