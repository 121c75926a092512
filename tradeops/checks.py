"""System checks for invariants that must hold before anything trades."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks


def check_utc(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors = []
    if settings.TIME_ZONE != "UTC" or not settings.USE_TZ:
        errors.append(
            checks.Error(
                "TIME_ZONE must be 'UTC' and USE_TZ True: trade dates and order ids are UTC.",
                id="tradeops.E001",
            )
        )
    return errors


def check_live_keys(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Live trading never runs with DEBUG on, nor with the public development SECRET_KEY."""
    live = not settings.USING_PAPER_BROKER and not settings.ALPACA_PAPER
    errors = []
    if live and settings.DEBUG:
        errors.append(
            checks.Error(
                "Live Alpaca keys (ALPACA_PAPER=0) with DJANGO_DEBUG on: refuse to start.",
                id="tradeops.E002",
            )
        )
    if not settings.USING_PAPER_BROKER and settings.SECRET_KEY == settings.INSECURE_DEV_SECRET_KEY:
        errors.append(
            checks.Error(
                "Real Alpaca keys with the development SECRET_KEY: set DJANGO_SECRET_KEY.",
                id="tradeops.E003",
            )
        )
    return errors


def register() -> None:
    checks.register(check_utc, checks.Tags.compatibility)
    checks.register(check_live_keys, checks.Tags.security)
