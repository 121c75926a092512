"""System checks for invariants that must hold before anything trades."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

# Every check of ours carries this tag too. The long-running workers (qcluster, reconcile,
# run_slices, the streams) run only these at start: cheap, and they are the ones that must
# hold before anything trades; the full set (URLconf, admin, models, deploy) runs on
# ``check``, ``migrate`` and in CI (README, Operations).
TRADING = "trading"


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


def check_unconfirmed_grace(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Reconciliation marks an order ``failed`` when the broker does not know it after the
    grace period. Shorter than a submit can take, it fails orders whose submit is still
    waiting for the broker; the broker's answer then reopens them, but until it does their
    shares count in no risk check."""
    from tradeops.broker import submit_window_seconds

    grace = settings.RECONCILIATION_SUBMITTED_UNCONFIRMED_GRACE_SECONDS
    window = submit_window_seconds()
    if grace >= window:
        return []
    return [
        checks.Warning(
            f"RECONCILIATION_SUBMITTED_UNCONFIRMED_GRACE_SECONDS ({grace}) is shorter than the "
            f"longest submit ({window:g} s from the ALPACA_* timeouts and retries): orders still "
            "being sent may be marked failed until the broker's answer reopens them.",
            hint=f"Set it to at least {int(window) + 1}.",
            id="tradeops.W001",
        )
    ]


def register() -> None:
    checks.register(check_utc, checks.Tags.compatibility, TRADING)
    checks.register(check_live_keys, checks.Tags.security, TRADING)
    checks.register(check_unconfirmed_grace, TRADING)
