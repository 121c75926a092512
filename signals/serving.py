"""Serving: the process's loaded model (hot reload) and the signal answer.

Each serving process keeps the active model in memory and looks at the registry at most every
MODEL_RELOAD_SECONDS; a newly active version is loaded (sha256 verified) without a restart.
A version that fails to load is logged and counted, and the model already loaded keeps
serving: a bad artifact never takes the signal down, and never serves unverified.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone

from marketdata.calendar import latest_finished_session
from signals import metrics
from signals.cache import FeatureCacheUnavailable, cache_read
from signals.features import FEATURE_SET_VERSION, feature_matrix
from signals.models import ModelVersion
from signals.readiness import signals_state
from signals.registry import LoadedModel, ModelError, model_load
from tradeops.broker import BrokerError
from tradeops.errors import NotFound, ServiceUnavailable, ValidationFailed

if TYPE_CHECKING:  # imported where used: importing them costs ~1 s at process start
    import numpy as np

logger = logging.getLogger(__name__)

CALENDAR_MEMO_SECONDS = 300


class SignalsNotReady(ServiceUnavailable):
    code = "signals_not_ready"

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("retry_after", settings.SIGNALS_RETRY_AFTER_SECONDS)
        super().__init__(message, **kwargs)


class _Serving:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.model: LoadedModel | None = None
        self.checked_at = float("-inf")
        self.load_error: str = ""  # why the active version is not the one loaded

    def reset(self) -> None:
        with self.lock:
            self.model, self.checked_at, self.load_error = None, float("-inf"), ""


_serving = _Serving()


def serving_model() -> LoadedModel | None:
    """The model this process serves, reloaded when another version became active."""
    with _serving.lock:
        fresh = time.monotonic() - _serving.checked_at < settings.MODEL_RELOAD_SECONDS
        if fresh and _serving.model is not None:
            return _serving.model
        _serving.checked_at = time.monotonic()
        active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()
        if active is None or (_serving.model is not None and _serving.model.id == active.pk):
            _serving.load_error = ""
            return _serving.model if active is not None else None
        try:
            loaded = model_load(active)
        except ModelError as exc:
            metrics.MODEL_LOADS.labels("failed").inc()
            _serving.load_error = exc.message
            kept = _serving.model.label if _serving.model else "nothing"
            logger.error("cannot load %s (keeping %s): %s", active.label, kept, exc.message)
            return _serving.model
        metrics.MODEL_LOADS.labels("ok").inc()
        previous = _serving.model.label if _serving.model else "none"
        logger.info("serving %s (was %s)", loaded.label, previous)
        _serving.model, _serving.load_error = loaded, ""
        return loaded


def serving_load_error() -> str:
    return _serving.load_error


_calendar_memo: dict[str, Any] = {}


def latest_trading_day(now: datetime) -> date | None:
    """The latest finished session, asked of the broker at most every 5 minutes per process;
    None when the broker cannot say (the answer then does not claim freshness either way)."""
    at = _calendar_memo.get("at")
    if at is not None and time.monotonic() - at < CALENDAR_MEMO_SECONDS:
        return _calendar_memo["day"]
    try:
        day = latest_finished_session(now=now)
    except BrokerError as exc:
        logger.warning("latest trading day unknown: %s", exc.message)
        return _calendar_memo.get("day")
    _calendar_memo.update(day=day, at=time.monotonic())
    return day


@dataclass(frozen=True)
class SignalAnswer:
    model: LoadedModel
    as_of: date
    generated_at: datetime
    latest_trading_day: date | None
    signals: list[dict[str, Any]]
    missing: list[dict[str, str]]

    @property
    def stale(self) -> bool | None:
        if self.latest_trading_day is None:
            return None
        return self.as_of < self.latest_trading_day


def rank_signals(
    symbols: list[str], scores: np.ndarray, *, top_n: int, bottom_n: int
) -> list[dict[str, Any]]:
    """Rank 1 = highest score (ties by symbol); +1/top_n for the top N, -1/bottom_n for the
    bottom N, 0 between."""
    order = sorted(range(len(symbols)), key=lambda i: (-scores[i], symbols[i]))
    count = len(order)
    out = []
    for rank, i in enumerate(order, start=1):
        weight = 0.0
        if rank <= top_n:
            weight = 1.0 / top_n
        elif rank > count - bottom_n:
            weight = -1.0 / bottom_n
        out.append(
            {"symbol": symbols[i], "score": float(scores[i]), "rank": rank, "target_weight": weight}
        )
    return out


def signals_answer(*, day: date | None, top_n: int, bottom_n: int) -> SignalAnswer:
    """Score the cached features of ``day`` (default: the latest hydrated date). Never
    computes from a cold or partial cache: 503 ``signals_not_ready`` instead."""
    state = signals_state()
    if not state.ready:
        metrics.SIGNALS_SERVED.labels("not_ready").inc()
        raise SignalsNotReady(
            f"signals not ready: {state.reason}", details={"reason": state.reason}
        )
    served = state.served
    as_of = day or served.as_of
    if as_of.isoformat() not in served.dates:
        raise NotFound(
            f"no features for {as_of}: cached trading days are {served.first_date}..{served.as_of}",
            details={"first_date": served.first_date, "as_of": served.as_of},
        )
    model = serving_model()
    if model is None:
        raise SignalsNotReady(
            f"signals not ready: the active model cannot be loaded: {serving_load_error()}"
        )
    try:
        rows = cache_read(version=FEATURE_SET_VERSION, days=[as_of])
    except FeatureCacheUnavailable as exc:
        metrics.FEATURE_CACHE_READS.labels("miss").inc()
        raise SignalsNotReady(f"signals not ready: {exc}") from None
    if rows.empty:
        metrics.FEATURE_CACHE_READS.labels("miss").inc()
        signals_state()  # the cache went away since: this requests a refill
        raise SignalsNotReady(f"signals not ready: features for {as_of} are not cached")
    metrics.FEATURE_CACHE_READS.labels("hit").inc()
    symbols = rows["symbol"].tolist()
    if top_n + bottom_n > len(symbols):
        raise ValidationFailed(
            f"top_n + bottom_n = {top_n + bottom_n} exceeds the {len(symbols)} names with "
            f"features for {as_of}",
            details={"fields": {"top_n": ["Too large."], "bottom_n": ["Too large."]}},
        )
    scores = model.predict(feature_matrix(rows))
    served_set = set(symbols)
    missing = [
        {"symbol": s, "reason": served.failures.get(s, "no features for this date")}
        for s in sorted(set(settings.SIGNAL_UNIVERSE) - served_set)
    ]
    metrics.SIGNALS_SERVED.labels("ok").inc()
    now = timezone.now()
    return SignalAnswer(
        model=model,
        as_of=as_of,
        generated_at=now,
        latest_trading_day=latest_trading_day(now),
        signals=rank_signals(symbols, scores, top_n=top_n, bottom_n=bottom_n),
        missing=missing,
    )
