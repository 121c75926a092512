"""The demo's signals step (called by ``manage.py demo``, which provides the Redis): bars for
the demo universe, and a first model trained and promoted. The job cluster
the demo starts then validates it, activates it and hydrates the cache, so /api/v1/signals
answers within the demo's start-up."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings

from marketdata.bars import bars_sync
from signals.models import ModelVersion
from signals.promotion import model_promote
from signals.readiness import signals_state
from signals.training import model_train

DEMO_MODEL = "demo-alpha"
HISTORY_DAYS = 250  # a year of bars: enough to train a first model in about a second

Write = Callable[[str], None]


def demo_signals_prepare(write: Write) -> None:
    """Bars for SIGNAL_UNIVERSE, and (first start only) a model trained and promoted: its
    validation and the hydration run in the job cluster the demo starts next."""
    if not settings.REDIS_URL:
        return
    universe = settings.SIGNAL_UNIVERSE
    write(f"demo: syncing {HISTORY_DAYS} trading days of bars for {len(universe)} symbols...")
    report = bars_sync(symbols=universe, days=HISTORY_DAYS)
    write(f"demo: {report.summary()}")
    if ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).exists():
        return
    pending = ModelVersion.objects.filter(status=ModelVersion.Status.VALIDATING).exists()
    if not pending:
        model = model_train(name=DEMO_MODEL, symbols=universe, actor="command:demo")
        model_promote(model=model, actor="command:demo", reason="demo: first model")
        write(f"demo: trained {model.label}; the job cluster validates and activates it")


def demo_signals_wait(write: Write, alive: Callable[[], bool], timeout: float = 90) -> None:
    """Wait (bounded) until /api/v1/signals can answer."""
    if not settings.REDIS_URL:
        return
    write("demo: waiting for the feature cache to be hydrated...")
    deadline = time.monotonic() + timeout
    state: Any = None
    while time.monotonic() < deadline and alive():
        state = signals_state(request_refill=False)
        if state.ready:
            write(f"demo: signals ready ({state.reason})")
            return
        time.sleep(0.5)
    write(f"demo: signals not ready yet: {state.reason if state else 'stopped'}")
