"""Are signals servable? Read by /ready/signals, /health, the signal API and the watchdog.

Ready means: a model is active (and of the feature set this build computes), a hydration of
that feature set has succeeded, and the feature cache still holds the date it serves. A
re-hydration in progress does not make a warm cache cold (it writes other keys and the served
date changes only when it succeeds); a cache found empty (Redis restarted or evicted) is not
ready and a refill is requested at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from signals.cache import FeatureCacheUnavailable, cache_has
from signals.features import FEATURE_SET_VERSION
from signals.hydration import hydration_latest_good
from signals.models import HydrationRun, ModelVersion


@dataclass(frozen=True)
class SignalsState:
    ready: bool
    reason: str
    model: ModelVersion | None
    served: HydrationRun | None  # the run whose dates are served
    latest: HydrationRun | None  # the latest run of any status

    @property
    def progress(self) -> str:
        run = self.latest
        if run is None or run.status != HydrationRun.Status.RUNNING:
            return ""
        return f"hydrating: {run.symbols_done}/{run.symbols_total} symbols"


def signals_state(*, request_refill: bool = True) -> SignalsState:
    model = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
    latest = HydrationRun.objects.exclude(status=HydrationRun.Status.SKIPPED).first()
    served = hydration_latest_good()

    def state(ready: bool, reason: str) -> SignalsState:
        return SignalsState(ready, reason, model, served, latest)

    if model is None:
        return state(False, "no model is active")
    if model.feature_set_version != FEATURE_SET_VERSION:
        return state(
            False,
            f"{model.label} uses feature set {model.feature_set_version}; this build computes "
            f"{FEATURE_SET_VERSION}",
        )
    if served is None:
        if latest is not None and latest.status == HydrationRun.Status.RUNNING:
            return state(
                False,
                f"feature cache warming up ({latest.symbols_done}/{latest.symbols_total} symbols)",
            )
        if latest is not None and latest.status == HydrationRun.Status.FAILED:
            return state(False, f"feature hydration failed: {latest.reason}")
        return state(False, "feature cache not hydrated yet")
    try:
        warm = cache_has(version=FEATURE_SET_VERSION, day=served.as_of)
    except FeatureCacheUnavailable as exc:
        return state(False, f"feature cache unavailable: {exc}")
    if not warm:
        if request_refill:
            from signals.tasks import hydration_request

            hydration_request("refill", coalesce=True)
        return state(
            False, f"feature cache empty for {served.as_of} (Redis restarted?): refill requested"
        )
    return state(True, f"{model.label}, features as of {served.as_of}")
