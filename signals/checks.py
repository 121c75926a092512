"""System checks: a typo in the signal universe or the shadow thresholds stops the process at
start instead of quietly ranking fewer names or validating against a nonsense gate."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from tradeops.symbols import symbol_parse


def check_signals_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors = []
    for raw in settings.SIGNAL_UNIVERSE:
        try:
            symbol_parse(raw)
        except ValueError:
            errors.append(
                checks.Error(f"SIGNAL_UNIVERSE: {raw!r} is not a symbol.", id="signals.E001")
            )
    if not -1.0 <= settings.SHADOW_MIN_CORRELATION <= 1.0:
        errors.append(
            checks.Error("SHADOW_MIN_CORRELATION must be within [-1, 1].", id="signals.E002")
        )
    if settings.SKIP_SHADOW_VALIDATION:
        errors.append(
            checks.Warning(
                "SKIP_SHADOW_VALIDATION=1: every promoted model goes live WITHOUT validation.",
                id="signals.W001",
            )
        )
    return errors
