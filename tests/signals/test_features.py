"""The feature set: formulas on hand-made bars, and train/serve parity (batch over history ==
the serving path's last-day computation, exactly)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from signals.features import (
    FEATURE_NAMES,
    HISTORY_BARS,
    features_at,
    features_compute,
    target_next_day,
)


def synthetic_bars(symbols: list[str], days: int, seed: int = 7) -> pd.DataFrame:
    """Random-walk bars (weekday dates; only the order of rows matters here)."""
    rng = np.random.default_rng(seed)
    rows = []
    for symbol in symbols:
        close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, days)))
        volume = rng.lognormal(13, 0.4, days).round()
        for i in range(days):
            rows.append(
                {
                    "symbol": symbol,
                    "date": date(2023, 1, 2) + timedelta(days=i),
                    "open": close[i] * (1 + rng.normal(0, 0.003)),
                    "high": close[i] * 1.01,
                    "low": close[i] * 0.99,
                    "close": close[i],
                    "volume": volume[i],
                }
            )
    return pd.DataFrame(rows)


def linear_bars(n: int = 21) -> pd.DataFrame:
    close = np.arange(100.0, 100.0 + n)
    return pd.DataFrame(
        {
            "symbol": "UP",
            "date": [date(2024, 1, 1) + timedelta(days=i) for i in range(n)],
            "open": close,
            "high": close + 1,
            "low": close - 1,
            "close": close,
            "volume": np.full(n, 1000.0),
        }
    )


def test_formulas_on_a_steady_rise() -> None:
    (row,) = features_compute(linear_bars()).to_dict("records")  # 21 bars: one row
    assert row["date"] == date(2024, 1, 21)
    assert row["ret_1d"] == pytest.approx(120 / 119 - 1)
    assert row["ret_5d"] == pytest.approx(120 / 115 - 1)
    assert row["ret_20d"] == pytest.approx(120 / 100 - 1)
    assert row["px_sma5"] == pytest.approx(120 / 118 - 1)
    assert row["px_sma20"] == pytest.approx(120 / 110.5 - 1)
    rets = [(101 + i) / (100 + i) - 1 for i in range(20)]
    assert row["vol_20d"] == pytest.approx(np.std(rets, ddof=1))
    assert row["rsi_14"] == 100.0  # only gains
    assert row["volume_z20"] == 0.0  # constant volume: no spread, defined as 0
    assert row["hl_range"] == pytest.approx(2 / 120)


def test_rsi_is_50_on_a_flat_price_and_0_on_a_steady_fall() -> None:
    flat = linear_bars().assign(close=100.0)
    assert features_compute(flat)["rsi_14"].tolist() == [50.0]
    falling = linear_bars().assign(close=lambda f: 200.0 - f["close"])
    assert features_compute(falling)["rsi_14"].tolist() == [0.0]


def test_a_row_needs_21_bars_and_rows_come_sorted_whatever_the_input_order() -> None:
    assert features_compute(linear_bars(HISTORY_BARS - 1)).empty
    bars = synthetic_bars(["BBB", "AAA"], 30).sample(frac=1.0, random_state=3)
    features = features_compute(bars)
    assert list(features.columns) == ["symbol", "date", *FEATURE_NAMES]
    assert len(features) == 2 * (30 - HISTORY_BARS + 1)
    assert features["symbol"].tolist() == ["AAA"] * 10 + ["BBB"] * 10
    assert features["date"].is_monotonic_increasing is False  # two symbols, each sorted
    assert features[features.symbol == "AAA"]["date"].is_monotonic_increasing
    assert np.isfinite(features[FEATURE_NAMES].to_numpy()).all()


def assert_parity(bars: pd.DataFrame) -> int:
    """Every day's serving-path features equal the batch features of that day, exactly."""
    batch = features_compute(bars).set_index(["symbol", "date"])
    checked = 0
    for day in sorted(bars["date"].unique()):
        served = features_at(bars[bars["date"] <= day])
        for row in served.to_dict("records"):
            expected = batch.loc[(row["symbol"], row["date"])]
            for name in FEATURE_NAMES:
                assert row[name] == expected[name], (row["symbol"], day, name)
            checked += 1
    return checked


def test_train_serve_parity_is_exact_on_synthetic_history() -> None:
    bars = synthetic_bars(["AAA", "BBB", "CCC"], 90)
    assert assert_parity(bars) == 3 * (90 - HISTORY_BARS + 1)


@pytest.mark.django_db
def test_train_serve_parity_is_exact_on_paper_broker_bars(paper: Any) -> None:
    from marketdata.bars import bars_frame, bars_sync

    report = bars_sync(symbols=["AAPL", "MSFT", "XOM"], days=80, end=date(2024, 6, 28))
    assert report.failed == {}
    bars = bars_frame(
        symbols=["AAPL", "MSFT", "XOM"], since=report.sessions[0], until=report.sessions[-1]
    )
    assert assert_parity(bars) == 3 * (80 - HISTORY_BARS + 1)


def test_next_day_target() -> None:
    bars = linear_bars(3)
    target = target_next_day(bars)
    assert target["date"].tolist() == [date(2024, 1, 1), date(2024, 1, 2)]
    assert target["target"].tolist() == pytest.approx([101 / 100 - 1, 102 / 101 - 1])
