"""Shadow metrics, table-driven on plain arrays (the pure module: no ORM, no Redis)."""

from __future__ import annotations

import numpy as np
import pytest

from signals.shadow import Thresholds, sanity_check, shadow_compare, spearman, zscores

GATE = Thresholds(min_correlation=0.5, max_divergence=0.5)
RNG = np.random.default_rng(5)
DATES = [f"2024-07-{d:02d}" for d in range(1, 11) for _ in range(10)]  # 10 dates x 10 names
OLD = RNG.normal(0, 0.01, 100)


def compare(new: np.ndarray, old: np.ndarray = OLD, dates: list[str] = DATES):
    return shadow_compare(dates=dates, old=old, new=new, thresholds=GATE)


@pytest.mark.parametrize(
    ("label", "new", "passes"),
    [
        ("identical", OLD, True),
        ("rescaled x3", OLD * 3, True),
        ("shifted and rescaled", OLD * 0.2 + 5.0, True),
        ("monotone transform (ranks kept)", np.exp(OLD * 50), True),
        ("small noise", OLD + RNG.normal(0, 0.001, 100), True),
        ("negated", -OLD, False),
        ("unrelated", RNG.normal(0, 0.01, 100), False),
        ("shuffled", RNG.permutation(OLD), False),
    ],
)
def test_gate_judges_rankings_not_scales(label: str, new: np.ndarray, passes: bool) -> None:
    report = compare(new)
    assert report.passed is passes, (label, report.reasons)
    assert report.n_samples == 100 and report.n_dates == 10


def test_rescaled_model_has_zero_divergence_and_negated_fails_both_gates() -> None:
    tripled = compare(OLD * 3)
    assert tripled.spearman_mean == pytest.approx(1.0)
    assert tripled.divergence == pytest.approx(0.0, abs=1e-12)
    assert tripled.pearson == pytest.approx(1.0)
    assert tripled.sign_change_rate == 0.0
    assert tripled.new_range == pytest.approx((OLD.min() * 3, OLD.max() * 3))
    negated = compare(-OLD)
    assert negated.spearman_mean == pytest.approx(-1.0)
    assert negated.divergence > 1.0
    assert negated.sign_change_rate == 1.0
    assert [r.split()[0] for r in negated.reasons] == ["mean", "divergence"]


def test_per_date_spearman_sees_what_pooled_pearson_hides() -> None:
    """Levels that differ by date dominate a pooled correlation (upstream's gate): here the
    candidate reverses the ranking within every date, yet pooled Pearson is ~1."""
    level = np.repeat(np.arange(10) * 1.0, 10)
    within = np.tile(np.arange(10) * 0.001, 10)
    report = compare(level - within, old=level + within)
    assert report.pearson > 0.99
    assert report.spearman_mean == pytest.approx(-1.0)
    assert not report.passed


def test_dates_that_cannot_be_judged() -> None:
    dates = ["d1"] * 2 + ["d2"] * 5 + ["d3"] * 5
    old = np.array([1.0, 2.0, 7, 7, 7, 7, 7, 1, 2, 3, 4, 5])
    new = np.array([2.0, 1.0, 1, 2, 3, 4, 5, 5, 5, 5, 5, 5])
    report = compare(new, old=old, dates=dates)
    # d1: two names only; d2: the serving model ranks nothing (left out); d3: the candidate
    # ranks nothing (correlation 0, the divergence of an all-zero z-score)
    assert report.per_date == {"d3": 0.0}
    assert report.divergence == pytest.approx(np.mean(np.abs(zscores(old[7:]))))
    assert not report.passed


def test_no_comparable_date_is_a_rejection() -> None:
    report = compare(np.array([1.0, 2.0]), old=np.array([2.0, 1.0]), dates=["a", "b"])
    assert report.reasons == ("no date with 3 or more names to compare",)


@pytest.mark.parametrize(
    ("new", "finite", "non_constant", "reason"),
    [
        (np.full(100, 0.25), True, False, "every output is 0.25"),
        (np.where(np.arange(100) == 3, np.nan, OLD), False, False, "1 outputs are not finite"),
        (np.where(np.arange(100) == 4, np.inf, OLD), False, False, "1 outputs are not finite"),
        (OLD, True, True, None),
    ],
)
def test_sanity_gate(new: np.ndarray, finite: bool, non_constant: bool, reason: str | None) -> None:
    first = sanity_check(dates=DATES, new=new)
    assert (first.finite, first.non_constant, first.passed) == (finite, non_constant, not reason)
    if reason:
        assert first.reasons[0].startswith(reason)
        assert compare(new).passed is False  # the shadow gate includes it


def test_a_non_finite_serving_model_rejects_rather_than_compares() -> None:
    report = compare(OLD, old=np.where(np.arange(100) == 0, np.nan, OLD))
    assert report.reasons == (
        "the serving model's outputs are not finite: nothing to compare with",
    )


def test_spearman_uses_average_ranks_for_ties() -> None:
    assert spearman(np.array([1.0, 2, 2, 3]), np.array([1.0, 2, 3, 4])) == pytest.approx(
        np.corrcoef([1, 2.5, 2.5, 4], [1, 2, 3, 4])[0, 1]
    )
    assert spearman(np.array([1.0, 1, 1]), np.array([1.0, 2, 3])) is None
