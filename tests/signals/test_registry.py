"""The registry's commands: train_model, register_model (LightGBM text only, the feature set
checked, nothing written on refusal), and thresholds that come from the settings and are kept
with each validation."""

from __future__ import annotations

import pickle
from io import StringIO
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
from django.core.management import CommandError, call_command

from signals.models import ModelVersion
from signals.registry import model_get, model_load
from tests.signals.support import activate_first, train
from tradeops.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_train_model_registers_a_candidate(stored_bars: Any, settings: Any) -> None:
    out = StringIO()
    call_command("train_model", "--name", "alpha", "--rounds", "20", stdout=out)
    model = model_get(name="alpha", version=1)
    assert "registered alpha version 1 (candidate)" in out.getvalue()
    assert model.status == "candidate" and model.training_rows > 500
    assert model.training_end < stored_bars.sessions[-1]  # the last day has no next-day label
    text = (Path(settings.MODEL_DIR) / model.artifact_path).read_text()
    assert text.startswith("tree\n") and "feature_names=ret_1d ret_5d" in text
    assert model_load(model).predict(np.zeros((2, 9))).shape == (2,)
    call_command("train_model", "--name", "alpha", "--rounds", "20", stdout=StringIO())
    again = model_get(name="alpha", version=2)
    assert again.artifact_sha256 == model.artifact_sha256  # deterministic training
    with pytest.raises(CommandError, match="--start is after --end"):
        call_command("train_model", "--name", "a", "--start", "2024-02-01", "--end", "2024-01-01")
    with pytest.raises(CommandError, match="invalid model name"):
        call_command("train_model", "--name", "Bad Name", stdout=StringIO())


def test_register_model_prints_the_version_and_refuses_what_it_cannot_serve(
    stored_bars: Any, tmp_path: Path, settings: Any
) -> None:
    good = tmp_path / "good.txt"
    model = train("alpha")
    good.write_bytes((Path(settings.MODEL_DIR) / model.artifact_path).read_bytes())
    out = StringIO()
    call_command(
        "register_model", str(good), "--name", "beta", "--note", "from research", stdout=out
    )
    assert out.getvalue().splitlines()[-1] == "1"
    assert AuditEvent.objects.filter(action="model.register", reason="from research").exists()
    before = (ModelVersion.objects.count(), sorted(Path(settings.MODEL_DIR).rglob("*")))

    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps({"not": "a model"}))
    with pytest.raises(CommandError, match="not a LightGBM text model"):
        call_command("register_model", str(pickled), "--name", "beta")
    other = tmp_path / "other.txt"  # a LightGBM model on other features
    rng = np.random.default_rng(1)
    booster = lgb.train(
        {"verbose": -1, "num_threads": 1},
        lgb.Dataset(rng.normal(size=(200, 3)), label=rng.normal(size=200)),
        num_boost_round=3,
    )
    booster.save_model(str(other))
    with pytest.raises(CommandError, match="are not feature set daily-v1"):
        call_command("register_model", str(other), "--name", "beta")
    with pytest.raises(CommandError, match="not served by this build"):
        call_command("register_model", str(good), "--name", "beta", "--feature-set", "daily-v0")
    with pytest.raises(CommandError, match="cannot read"):
        call_command("register_model", str(tmp_path / "missing.txt"), "--name", "beta")
    after = (ModelVersion.objects.count(), sorted(Path(settings.MODEL_DIR).rglob("*")))
    assert after == before  # nothing written by a refusal


def test_thresholds_come_from_the_settings_and_are_kept_with_the_validation(
    stored_bars: Any, q_sync: None, settings: Any
) -> None:
    from signals.promotion import model_promote

    activate_first(train("alpha"))
    settings.SHADOW_MIN_CORRELATION = 0.999
    validation = model_promote(model=train("alpha", seed=99), actor="test", reason="test promotion")
    assert (validation.min_correlation, validation.max_divergence) == (0.999, 0.5)
    assert validation.outcome == "rejected" and "< 0.999" in validation.reasons[0]


def test_system_checks_refuse_a_bad_universe_and_warn_about_skipping(settings: Any) -> None:
    from signals.checks import check_signals_settings

    assert check_signals_settings() == []
    settings.SIGNAL_UNIVERSE = ["AAPL", "not a symbol", "\u0131bm"]  # a dotless i is no IBM
    settings.SKIP_SHADOW_VALIDATION = True
    ids = [m.id for m in check_signals_settings()]
    assert ids == ["signals.E001", "signals.E001", "signals.W001"]
