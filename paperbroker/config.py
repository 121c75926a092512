"""Behaviour switches of the paper broker engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import Any

from paperbroker.models import as_bool, dstr, invalid, to_decimal

FILL_MODELS = ("immediate", "partial", "manual")


@dataclass(frozen=True)
class EngineConfig:
    """Behaviour switches; settable at reset and at runtime (``POST /_paper/config``)."""

    fill_model: str = "immediate"
    partial_fills: int = 3
    random_walk: bool = True
    tick_seconds: float = 1.0
    initial_cash: Decimal = Decimal("100000")
    seed: int = 0
    volatility: float = 0.001  # standard deviation of one random-walk step (log return)

    def updated(self, changes: Mapping[str, Any]) -> EngineConfig:
        """A copy with ``changes`` applied and validated (422 on bad values)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise invalid(f"unknown config keys: {', '.join(sorted(unknown))}")
        values = asdict(self) | dict(changes)
        try:
            config = EngineConfig(
                fill_model=str(values["fill_model"]),
                partial_fills=int(values["partial_fills"]),
                random_walk=as_bool(values["random_walk"], "random_walk"),
                tick_seconds=float(values["tick_seconds"]),
                initial_cash=to_decimal(values["initial_cash"], "initial_cash"),
                seed=int(values["seed"]),
                volatility=float(values["volatility"]),
            )
        except (TypeError, ValueError):
            raise invalid("invalid config value") from None
        if config.fill_model not in FILL_MODELS:
            raise invalid(f"fill_model must be one of {', '.join(FILL_MODELS)}")
        if config.partial_fills < 1 or config.tick_seconds < 0 or config.volatility < 0:
            raise invalid("partial_fills must be >= 1, tick_seconds and volatility >= 0")
        return config

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"initial_cash": dstr(self.initial_cash)}
