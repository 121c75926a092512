"""Shadow validation metrics (pure: plain arrays in, a report out; no ORM, clock or I/O).

A signal is used as a cross-sectional ranking, so a candidate is judged on how it ranks the
same names on the same day as the model serving now, never on the scale of its outputs:

- **per-date Spearman**: for every date with at least ``MIN_NAMES`` names, the Pearson
  correlation of the two models' ranks (average ranks for ties); the gate is the mean over
  dates ``>= min_correlation``. Pooling all rows into one correlation (upstream) lets the
  spread between dates dominate and says nothing about the ranking within a day.
- **divergence**: per date, the mean absolute difference of the two models' cross-sectional
  z-scores ``(x - mean) / stdev``, averaged over dates; gate ``<= max_divergence``. Scale-free:
  a model that only rescales its outputs (x3) diverges by 0, a negated one by about 1.6, an
  unrelated one by about 1.1 (for normal scores, ``2 * sqrt((1 - rho) / pi)``).
- **sanity**: every output finite and not all equal (the only gate for the first model).

Recorded but not gated: pooled Pearson, the share of rows whose sign flips, output ranges.
A date on which the candidate ranks every name the same counts as correlation 0 and z-scores
0; a date on which the serving model does is left out (nothing to compare with).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: importing them costs ~1 s at process start
    import numpy as np


MIN_NAMES = 3  # fewer names on a date make a rank correlation meaningless


@dataclass(frozen=True)
class Thresholds:
    min_correlation: float
    max_divergence: float


@dataclass(frozen=True)
class ShadowReport:
    passed: bool
    reasons: tuple[str, ...]
    n_samples: int
    n_dates: int
    finite: bool
    non_constant: bool
    spearman_mean: float | None = None
    spearman_min: float | None = None
    divergence: float | None = None
    pearson: float | None = None
    sign_change_rate: float | None = None
    old_range: tuple[float, float] | None = None
    new_range: tuple[float, float] | None = None
    per_date: dict[str, float] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        """The fields a ShadowValidation row stores."""
        return {
            "n_samples": self.n_samples,
            "n_dates": self.n_dates,
            "finite": self.finite,
            "non_constant": self.non_constant,
            "spearman_mean": self.spearman_mean,
            "spearman_min": self.spearman_min,
            "divergence": self.divergence,
            "pearson": self.pearson,
            "sign_change_rate": self.sign_change_rate,
            "old_min": self.old_range[0] if self.old_range else None,
            "old_max": self.old_range[1] if self.old_range else None,
            "new_min": self.new_range[0] if self.new_range else None,
            "new_max": self.new_range[1] if self.new_range else None,
            "per_date": self.per_date,
            "reasons": list(self.reasons),
        }


def _constant(values: np.ndarray) -> bool:
    import numpy as np

    return len(values) == 0 or bool(np.all(values == values[0]))


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    import numpy as np

    if len(a) < 2 or _constant(a) or _constant(b):
        return None
    da, db = a - a.mean(), b - b.mean()
    return float(np.clip((da @ db) / np.sqrt((da @ da) * (db @ db)), -1.0, 1.0))


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Rank correlation with average ranks for ties; None when either side is constant."""
    import pandas as pd

    ranks_a = pd.Series(a).rank(method="average").to_numpy()
    ranks_b = pd.Series(b).rank(method="average").to_numpy()
    return _pearson(ranks_a, ranks_b)


def zscores(values: np.ndarray) -> np.ndarray:
    """Cross-sectional z-scores (population stdev); all zero for a constant cross-section."""
    import numpy as np

    if _constant(values):
        return np.zeros(len(values))
    return (values - values.mean()) / values.std()


def _range(values: np.ndarray) -> tuple[float, float] | None:
    import numpy as np

    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if len(finite) else None


def _groups(dates: Sequence[Any]) -> dict[str, np.ndarray]:
    """Row indices per date, dates as ISO text."""
    import numpy as np

    keys = np.array([str(d) for d in dates])
    return {key: np.flatnonzero(keys == key) for key in sorted(set(keys.tolist()))}


def sanity_check(*, dates: Sequence[Any], new: Sequence[float]) -> ShadowReport:
    """The first model's gate: outputs finite and not all the same."""
    import numpy as np

    values = np.asarray(new, dtype="float64")
    finite = bool(len(values) and np.isfinite(values).all())
    non_constant = finite and not _constant(values)
    reasons = []
    if not len(values):
        reasons.append("no sample rows to score")
    elif not finite:
        reasons.append(f"{int((~np.isfinite(values)).sum())} outputs are not finite")
    elif not non_constant:
        reasons.append(f"every output is {float(values[0])!r}: the model ranks nothing")
    return ShadowReport(
        passed=not reasons,
        reasons=tuple(reasons),
        n_samples=len(values),
        n_dates=len(_groups(dates)),
        finite=finite,
        non_constant=non_constant,
        new_range=_range(values),
    )


def shadow_compare(
    *,
    dates: Sequence[Any],
    old: Sequence[float],
    new: Sequence[float],
    thresholds: Thresholds,
) -> ShadowReport:
    """Judge ``new`` against ``old`` on the same rows (one per name and date)."""
    import numpy as np

    old_v = np.asarray(old, dtype="float64")
    new_v = np.asarray(new, dtype="float64")
    if len(old_v) != len(new_v) or len(old_v) != len(dates):
        raise ValueError("dates, old and new must have the same length")
    sanity = sanity_check(dates=dates, new=new_v)
    common = {
        "n_samples": len(new_v),
        "n_dates": sanity.n_dates,
        "finite": sanity.finite,
        "non_constant": sanity.non_constant,
        "old_range": _range(old_v),
        "new_range": sanity.new_range,
    }
    if not sanity.passed:
        return ShadowReport(passed=False, reasons=sanity.reasons, **common)
    if not np.isfinite(old_v).all():
        reason = "the serving model's outputs are not finite: nothing to compare with"
        return ShadowReport(passed=False, reasons=(reason,), **common)
    per_date: dict[str, float] = {}
    divergences = []
    for key, index in _groups(dates).items():
        if len(index) < MIN_NAMES or _constant(old_v[index]):
            continue
        rho = spearman(old_v[index], new_v[index])
        per_date[key] = 0.0 if rho is None else rho
        divergences.append(float(np.mean(np.abs(zscores(new_v[index]) - zscores(old_v[index])))))
    reasons = []
    spearman_mean = float(np.mean(list(per_date.values()))) if per_date else None
    divergence = float(np.mean(divergences)) if divergences else None
    if spearman_mean is None or divergence is None:
        reasons.append(f"no date with {MIN_NAMES} or more names to compare")
    else:
        if spearman_mean < thresholds.min_correlation:
            reasons.append(
                f"mean per-date Spearman {spearman_mean:.3f} < {thresholds.min_correlation}"
            )
        if divergence > thresholds.max_divergence:
            reasons.append(f"divergence {divergence:.3f} > {thresholds.max_divergence}")
    signs_differ = np.sign(old_v) != np.sign(new_v)
    return ShadowReport(
        passed=not reasons,
        reasons=tuple(reasons),
        spearman_mean=spearman_mean,
        spearman_min=min(per_date.values()) if per_date else None,
        divergence=divergence,
        pearson=_pearson(old_v, new_v),
        sign_change_rate=float(signs_differ.mean()),
        per_date=per_date,
        **common,
    )
