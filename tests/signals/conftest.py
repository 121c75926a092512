"""Signals fixtures: the test Redis database (flushed), a scratch MODEL_DIR, a small universe
with real paper-broker bars, and real (small, fast) LightGBM models."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

UNIVERSE = ["AAPL", "JPM", "MSFT", "NVDA", "TSLA", "XOM"]


@pytest.fixture
def redis_db(settings: Any) -> Iterator[redis.Redis]:
    """This run's Redis database (TEST_REDIS_URL), empty."""
    assert settings.REDIS_URL, "tests need REDIS_URL (./dev test sets it from TEST_REDIS_URL)"
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def signals_env(settings: Any, tmp_path: Any, redis_db: redis.Redis, paper: Any, db: Any) -> Any:
    """Settings for fast signals tests; per-process serving state reset."""
    from signals import serving

    settings.MODEL_DIR = tmp_path / "models"
    settings.SIGNAL_UNIVERSE = list(UNIVERSE)
    settings.MODEL_RELOAD_SECONDS = 0
    settings.FEATURE_HYDRATION_DAYS = 15
    settings.SHADOW_SAMPLE_COUNT = 60
    settings.SIGNAL_TOP_N = 2
    settings.SIGNAL_BOTTOM_N = 2
    serving._serving.reset()
    serving._calendar_memo.clear()
    yield settings
    serving._serving.reset()


@pytest.fixture
def stored_bars(signals_env: Any) -> Any:
    """180 trading days of the universe's bars, synced from the paper broker."""
    from marketdata.bars import bars_sync

    report = bars_sync(symbols=UNIVERSE, days=180)
    assert report.failed == {}
    return report
