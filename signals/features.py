"""The daily feature set: one pure function from bars to features, used by training, hydration
and validation alike (no I/O, no clock, no ORM).

Every rolling statistic is computed window by window with the same sequence of float
operations whatever the length of the history it is taken from (``_window_sum`` adds the
window's values in one fixed order). So features computed in one batch over years of history
are bit-for-bit equal to the features serving computes from the last ``HISTORY_BARS`` bars:
the parity test checks ``==``, not a tolerance. The same reason rules out Wilder's RSI (an
exponential average whose value depends on the whole history): RSI here is Cutler's, the
simple mean of the last 14 gains and losses.

Windows count bars, not calendar days: a symbol's missing bar (a halt) shifts its windows; a
feature row exists only where every feature is defined (from the symbol's 21st bar on).

Changing any formula, window or name is a new ``FEATURE_SET_VERSION``: models record the
version they were trained on, and the registry refuses to serve a model with another one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: importing them costs ~1 s at process start
    import numpy as np
    import pandas as pd


FEATURE_SET_VERSION = "daily-v1"


@dataclass(frozen=True)
class Feature:
    name: str
    formula: str


FEATURES = (
    Feature("ret_1d", "close[t] / close[t-1] - 1"),
    Feature("ret_5d", "close[t] / close[t-5] - 1"),
    Feature("ret_20d", "close[t] / close[t-20] - 1"),
    Feature("px_sma5", "close[t] / mean(close[t-4..t]) - 1"),
    Feature("px_sma20", "close[t] / mean(close[t-19..t]) - 1"),
    Feature("vol_20d", "stdev(ret_1d[t-19..t]), sample (n-1), daily (not annualised)"),
    Feature(
        "rsi_14",
        "100 * mean(gain[t-13..t]) / (mean(gain[t-13..t]) + mean(loss[t-13..t])), "
        "gain/loss = max(+-(close[i] - close[i-1]), 0); 50 when both are 0 (Cutler's RSI)",
    ),
    Feature(
        "volume_z20",
        "(lv[t] - mean(lv[t-19..t])) / stdev(lv[t-19..t]), lv = ln(1 + volume); 0 when the "
        "stdev is below 1e-9 (constant volume)",
    ),
    Feature("hl_range", "(high[t] - low[t]) / close[t]"),
)
FEATURE_NAMES = [f.name for f in FEATURES]
HISTORY_BARS = 21  # bars one feature row needs, its own included (ret_20d, vol_20d)
BAR_COLUMNS = ["symbol", "date", "open", "high", "low", "close", "volume"]
MIN_SPREAD = 1e-9  # stdev of ln(volume) below this counts as none


def _window_sum(x: np.ndarray, width: int) -> np.ndarray:
    """out[i] = x[i] + x[i+1] + ... + x[i+width-1], always added in that order."""
    count = len(x) - width + 1
    acc = x[:count].copy()
    for k in range(1, width):
        acc += x[k : k + count]
    return acc


def _window_mean(x: np.ndarray, width: int) -> np.ndarray:
    return _window_sum(x, width) / width


def _window_std(x: np.ndarray, width: int) -> np.ndarray:
    """Sample standard deviation (n-1) of every window, two-pass (no cancellation)."""
    import numpy as np

    count = len(x) - width + 1
    mean = _window_mean(x, width)
    acc = (x[:count] - mean) ** 2
    for k in range(1, width):
        acc += (x[k : k + count] - mean) ** 2
    return np.sqrt(acc / (width - 1))


def _tail(values: np.ndarray, n: int) -> np.ndarray:
    """The last ``n`` values (the rows that have a full history)."""
    return values[len(values) - n :]


def _symbol_features(
    close: np.ndarray, high: np.ndarray, low: np.ndarray, volume: np.ndarray
) -> dict[str, np.ndarray]:
    """Features of one symbol for its rows HISTORY_BARS-1 .. n-1 (arrays of n - 20 values)."""
    import numpy as np

    n = len(close) - (HISTORY_BARS - 1)
    ret = close[1:] / close[:-1] - 1.0
    change = close[1:] - close[:-1]
    gain_mean = _window_mean(np.maximum(change, 0.0), 14)
    loss_mean = _window_mean(np.maximum(-change, 0.0), 14)
    moves = gain_mean + loss_mean
    safe_moves = np.where(moves > 0, moves, 1.0)
    rsi = np.where(moves > 0, 100.0 * gain_mean / safe_moves, 50.0)
    log_volume = np.log1p(volume)
    # A constant volume leaves a rounding residue (~1e-16), not a spread: dividing by it would
    # turn noise into a z-score of about 1.
    spread = _window_std(log_volume, 20)
    has_spread = spread > MIN_SPREAD
    safe_spread = np.where(has_spread, spread, 1.0)
    z = np.where(has_spread, (log_volume[19:] - _window_mean(log_volume, 20)) / safe_spread, 0.0)
    c = _tail(close, n)
    return {
        "ret_1d": _tail(ret, n),
        "ret_5d": c / _tail(close[:-5], n) - 1.0,
        "ret_20d": c / close[: len(close) - 20] - 1.0,
        "px_sma5": c / _tail(_window_mean(close, 5), n) - 1.0,
        "px_sma20": c / _tail(_window_mean(close, 20), n) - 1.0,
        "vol_20d": _tail(_window_std(ret, 20), n),
        "rsi_14": _tail(rsi, n),
        "volume_z20": _tail(z, n),
        "hl_range": (_tail(high, n) - _tail(low, n)) / c,
    }


def _symbol_blocks(bars: pd.DataFrame) -> list[tuple[str, int, int]]:
    """(symbol, start, end) of each symbol's contiguous rows in a frame sorted by symbol."""
    import numpy as np

    symbols = bars["symbol"].to_numpy()
    if len(symbols) == 0:
        return []
    edges = np.flatnonzero(symbols[1:] != symbols[:-1]) + 1
    starts = [0, *edges.tolist()]
    ends = [*edges.tolist(), len(symbols)]
    return [(str(symbols[s]), s, e) for s, e in zip(starts, ends, strict=True)]


def features_compute(bars: pd.DataFrame) -> pd.DataFrame:
    """Feature rows (columns ``symbol, date, *FEATURE_NAMES``) for every bar that has
    HISTORY_BARS bars of history, sorted by symbol then date. ``bars`` has BAR_COLUMNS in
    any row order; prices and volume as floats."""
    import numpy as np
    import pandas as pd

    bars = bars.sort_values(["symbol", "date"], kind="stable", ignore_index=True)
    arrays = {name: bars[name].to_numpy(dtype="float64") for name in BAR_COLUMNS[2:]}
    dates = bars["date"].to_numpy()
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ["symbol", "date", *FEATURE_NAMES]}
    for symbol, start, end in _symbol_blocks(bars):
        if end - start < HISTORY_BARS:
            continue
        block = {name: values[start:end] for name, values in arrays.items()}
        features = _symbol_features(block["close"], block["high"], block["low"], block["volume"])
        rows = end - start - (HISTORY_BARS - 1)
        parts["symbol"].append(np.full(rows, symbol, dtype=object))
        parts["date"].append(dates[start + HISTORY_BARS - 1 : end])
        for name in FEATURE_NAMES:
            parts[name].append(features[name])
    if not parts["symbol"]:
        return pd.DataFrame({name: [] for name in ["symbol", "date", *FEATURE_NAMES]})
    return pd.DataFrame({name: np.concatenate(values) for name, values in parts.items()})


def features_at(bars: pd.DataFrame) -> pd.DataFrame:
    """The serving path: each symbol's feature row for its LAST bar, computed from its last
    HISTORY_BARS bars only (a symbol with fewer bars has no row)."""
    bars = bars.sort_values(["symbol", "date"], kind="stable", ignore_index=True)
    recent = bars.groupby("symbol", sort=False).tail(HISTORY_BARS)
    features = features_compute(recent)
    return features.groupby("symbol", sort=False).tail(1).reset_index(drop=True)


def target_next_day(bars: pd.DataFrame) -> pd.DataFrame:
    """``symbol, date, target``: the return from the close of ``date`` to the next bar's
    close (the training label; the last bar of a symbol has none)."""
    import numpy as np

    bars = bars.sort_values(["symbol", "date"], kind="stable", ignore_index=True)
    close = bars["close"].to_numpy(dtype="float64")
    target = np.full(len(bars), np.nan)
    for _, start, end in _symbol_blocks(bars):
        target[start : end - 1] = close[start + 1 : end] / close[start : end - 1] - 1.0
    out = bars[["symbol", "date"]].copy()
    out["target"] = target
    return out.dropna(subset=["target"]).reset_index(drop=True)


def feature_matrix(rows: pd.DataFrame) -> np.ndarray:
    """The model input: FEATURE_NAMES in their fixed order, float64."""
    return rows[FEATURE_NAMES].to_numpy(dtype="float64")
