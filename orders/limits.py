"""Effective limits of a symbol: its RiskLimit row's fields, else the global row's ('*'), else
the settings. One resolution rule for the risk limits and the fat-finger thresholds, used by
the pre-trade checks (one symbol) and the RiskLimit admin's list (every row, constant queries:
the global row comes along in the same query as a subquery per field)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.db.models import QuerySet, Subquery

from orders.fat_finger import Thresholds
from orders.models import RiskLimit
from tradeops.compiled import CompiledQuery


@dataclass(frozen=True)
class EffectiveLimits:
    max_order_qty: int
    max_order_notional: Decimal
    max_position_qty: int


# Thresholds field -> (RiskLimit field, setting)
FAT_FINGER_FIELDS: dict[str, tuple[str, str]] = {
    "warn_notional": ("fat_finger_warn_notional", "FAT_FINGER_WARN_NOTIONAL"),
    "warn_qty": ("fat_finger_warn_qty", "FAT_FINGER_WARN_QTY"),
    "step_up_notional": ("fat_finger_step_up_notional", "FAT_FINGER_STEP_UP_NOTIONAL"),
    "collar_pct": ("fat_finger_collar_pct", "FAT_FINGER_COLLAR_PCT"),
    "warn_pct_adv": ("fat_finger_warn_pct_adv", "FAT_FINGER_WARN_PCT_ADV"),
    "max_pct_adv": ("fat_finger_max_pct_adv", "FAT_FINGER_MAX_PCT_ADV"),
}
RISK_FIELDS: dict[str, tuple[str, str]] = {
    "max_order_qty": ("max_order_qty", "RISK_DEFAULT_MAX_ORDER_QTY"),
    "max_order_notional": ("max_order_notional", "RISK_DEFAULT_MAX_ORDER_NOTIONAL"),
    "max_position_qty": ("max_position_qty", "RISK_DEFAULT_MAX_POSITION_QTY"),
}
ALL_FIELDS = [*RISK_FIELDS.values(), *FAT_FINGER_FIELDS.values()]
OVERRIDABLE = [column for column, _ in ALL_FIELDS]
GLOBAL_PREFIX = "global_"


def _resolve(
    symbol_row: Any, global_values: dict[str, Any], spec: dict[str, tuple[str, str]]
) -> dict[str, Any]:
    def pick(column: str, setting: str) -> Any:
        for value in (getattr(symbol_row, column, None), global_values.get(column)):
            if value is not None:
                return value
        return getattr(settings, setting)

    return {name: pick(column, setting) for name, (column, setting) in spec.items()}


def _rows(symbol: str) -> tuple[RiskLimit | None, dict[str, Any]]:
    rows = {r.symbol: r for r in RiskLimit.objects.filter(symbol__in=[symbol, RiskLimit.GLOBAL])}
    glob = rows.get(RiskLimit.GLOBAL)
    global_values = {c: getattr(glob, c) for c in OVERRIDABLE} if glob is not None else {}
    return rows.get(symbol), global_values


def effective_limits(symbol: str) -> EffectiveLimits:
    """The risk limits (hard ceilings) for ``symbol``. One query."""
    row, glob = _rows(symbol)
    return EffectiveLimits(**_resolve(row, glob, RISK_FIELDS))


_GLOBAL_ROW = CompiledQuery(
    lambda: RiskLimit.objects.filter(symbol=RiskLimit.GLOBAL).values_list(*OVERRIDABLE)[:1]
)


def limits_of_locked(symbol_row: RiskLimit) -> tuple[EffectiveLimits, Thresholds]:
    """The risk limits and fat-finger thresholds of a symbol whose row the caller holds
    (locked, so read in the locking statement): the global row in one query of its own, after
    the lock (a subquery of the locking statement would see the snapshot taken before it
    waited)."""
    glob = _GLOBAL_ROW.first()
    global_values = dict(zip(OVERRIDABLE, glob, strict=True)) if glob is not None else {}
    return (
        EffectiveLimits(**_resolve(symbol_row, global_values, RISK_FIELDS)),
        Thresholds(**_resolve(symbol_row, global_values, FAT_FINGER_FIELDS)),
    )


def limits_in_force(symbol: str, *, row: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every overridable limit of ``symbol`` as in force now (RiskLimit column -> value), or
    as it would be with ``row`` (a form's cleaned data) as the symbol's row: what a step-up
    compares (tradeops.admin_tools.limits_raised). One query."""
    current, glob = _rows(symbol)
    if symbol == RiskLimit.GLOBAL:  # the global row's own fallback is the settings
        glob = {}
    source = SimpleNamespace(**row) if row is not None else current
    spec = {column: (column, setting) for column, setting in ALL_FIELDS}
    return _resolve(source, glob, spec)


def fat_finger_thresholds(symbol: str) -> Thresholds:
    """The fat-finger thresholds for ``symbol``. One query."""
    row, glob = _rows(symbol)
    return Thresholds(**_resolve(row, glob, FAT_FINGER_FIELDS))


# --- every row at once (the admin's list) -------------------------------------------------
def risk_limits_with_global(qs: QuerySet[RiskLimit]) -> QuerySet[RiskLimit]:
    """Each row annotated with the global row's values (``global_<field>``), so the effective
    limits of a whole page come from the page's one query."""
    # An uncorrelated scalar subquery per field: the global row is at most one (unique symbol).
    glob = RiskLimit.objects.filter(symbol=RiskLimit.GLOBAL)
    return qs.annotate(**{f"{GLOBAL_PREFIX}{c}": Subquery(glob.values(c)[:1]) for c in OVERRIDABLE})


def _annotated_global(row: RiskLimit) -> dict[str, Any]:
    if not hasattr(row, f"{GLOBAL_PREFIX}{OVERRIDABLE[0]}"):
        raise ValueError("row was not loaded through risk_limits_with_global()")
    return {c: getattr(row, f"{GLOBAL_PREFIX}{c}") for c in OVERRIDABLE}


def row_effective_limits(row: RiskLimit) -> EffectiveLimits:
    """``effective_limits`` of a row from ``risk_limits_with_global`` (no query)."""
    return EffectiveLimits(**_resolve(row, _annotated_global(row), RISK_FIELDS))


def row_fat_finger_thresholds(row: RiskLimit) -> Thresholds:
    """``fat_finger_thresholds`` of a row from ``risk_limits_with_global`` (no query)."""
    return Thresholds(**_resolve(row, _annotated_global(row), FAT_FINGER_FIELDS))
