"""Training a LightGBM model on the stored daily bars, with the same feature code serving uses.

The label is the next day's return in excess of that day's cross-sectional mean: the signal
ranks names against each other, so the market's common move is noise to it. Rows whose label
would need a bar after ``end`` are not used (no look-ahead past the training window).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from django.db.models import Max, Min

from marketdata.bars import bars_frame
from marketdata.models import DailyBar
from signals.features import FEATURE_NAMES, feature_matrix, features_compute, target_next_day
from signals.models import ModelVersion
from signals.registry import ModelError, model_register

if TYPE_CHECKING:  # imported where used: importing them costs ~1 s at process start
    import lightgbm as lgb
    import numpy as np
    import pandas as pd

DEFAULT_ROUNDS = 60
MIN_TRAINING_ROWS = 200
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "regression",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "seed": 7,
    # Same data + same seed = the same model, on any machine with this LightGBM build.
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 1,
    "verbose": -1,
}


@dataclass(frozen=True)
class TrainingSet:
    rows: pd.DataFrame  # symbol, date, FEATURE_NAMES, target
    start: date
    end: date

    @property
    def matrix(self) -> np.ndarray:
        return feature_matrix(self.rows)

    @property
    def target(self) -> np.ndarray:
        return self.rows["target"].to_numpy(dtype="float64")


def training_set_build(bars: pd.DataFrame, *, start: date | None = None) -> TrainingSet:
    """Feature rows joined with their next-day excess return (demeaned per date)."""
    features = features_compute(bars)
    if start is not None:
        features = features[features["date"] >= start]
    rows = features.merge(target_next_day(bars), on=["symbol", "date"], how="inner")
    rows["target"] = rows["target"] - rows.groupby("date")["target"].transform("mean")
    rows = rows.sort_values(["date", "symbol"], ignore_index=True)
    if len(rows) < MIN_TRAINING_ROWS:
        raise ModelError(
            f"only {len(rows)} training rows (at least {MIN_TRAINING_ROWS}): sync more bars "
            "(sync_bars --days N) or widen --start/--end",
            code="validation_error",
        )
    return TrainingSet(rows=rows, start=rows["date"].min(), end=rows["date"].max())


def booster_train(
    matrix: np.ndarray,
    target: np.ndarray,
    *,
    rounds: int = DEFAULT_ROUNDS,
    params: dict[str, Any] | None = None,
) -> lgb.Booster:
    import lightgbm as lgb

    merged = {**DEFAULT_PARAMS, **(params or {})}
    data = lgb.Dataset(matrix, label=target, feature_name=list(FEATURE_NAMES), free_raw_data=True)
    return lgb.train(merged, data, num_boost_round=rounds)


def model_train(
    *,
    name: str,
    symbols: Sequence[str],
    actor: Any,
    start: date | None = None,
    end: date | None = None,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = DEFAULT_PARAMS["seed"],
) -> ModelVersion:
    """Train on the stored bars of ``symbols`` (features dated start..end) and register the
    booster as a candidate of ``name``."""
    stored = DailyBar.objects.filter(symbol__in=list(symbols)).aggregate(
        first=Min("date"), last=Max("date")
    )
    if stored["first"] is None:
        raise ModelError("no stored bars for these symbols: run sync_bars first", code="not_found")
    end = min(end or stored["last"], stored["last"])
    since = stored["first"] if start is None else max(stored["first"], start - timedelta(days=60))
    bars = bars_frame(symbols=symbols, since=since, until=end)
    training = training_set_build(bars, start=start)
    params = {**DEFAULT_PARAMS, "seed": seed}
    booster = booster_train(training.matrix, training.target, rounds=rounds, params=params)
    return model_register(
        data=booster.model_to_string().encode("ascii"),
        name=name,
        actor=actor,
        training_start=training.start,
        training_end=training.end,
        training_rows=len(training.rows),
        params={**params, "rounds": rounds, "symbols": sorted(symbols)},
        note=f"trained on {len(training.rows)} rows {training.start}..{training.end}",
    )
