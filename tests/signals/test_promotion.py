"""Promotion through shadow validation with real LightGBM models trained on paper-broker bars:
a retrained or rescaled candidate goes live, a negated or noise-trained one is rejected and the
old model keeps serving; rejected stays rejected; the override and SKIP_SHADOW_VALIDATION."""

from __future__ import annotations

import logging
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from signals.models import ModelVersion, ShadowValidation
from signals.promotion import model_promote, shadow_validation_run
from signals.registry import ModelError
from tests.helpers import token_client
from tests.signals.support import activate_first, shuffled, train
from tradeops.errors import Conflict
from tradeops.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def serving(stored_bars: Any, q_sync: None) -> ModelVersion:
    """alpha v1 active and hydrated."""
    return activate_first(train("alpha"))


def served_version() -> int:
    answer = token_client("alpha").get("/api/v1/signals")
    assert answer.status_code == 200, answer.json()
    return answer.json()["model"]["version"]


def promote(model: ModelVersion) -> ShadowValidation:
    validation = model_promote(model=model, actor="test", reason="weekly retrain")
    model.refresh_from_db()
    return validation


def test_first_model_goes_live_on_the_sanity_check_alone(serving: ModelVersion) -> None:
    validation = serving.validations.get()
    assert (validation.kind, validation.outcome, validation.baseline) == ("first", "passed", None)
    assert validation.finite and validation.non_constant
    assert validation.spearman_mean is None  # nothing to compare with
    assert validation.n_samples >= 60 and validation.n_samples % 6 == 0  # whole dates
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["model.register", "model.promote", "model.activate"]
    assert served_version() == 1


@pytest.mark.parametrize(
    ("label", "kwargs"),
    [
        ("retrained with another seed", {"seed": 99}),
        ("rescaled x3", {"transform": lambda y: y * 3}),
    ],
)
def test_good_candidates_pass_and_replace_the_active_model(
    serving: ModelVersion, label: str, kwargs: dict
) -> None:
    candidate = train("alpha", **kwargs)
    validation = promote(candidate)
    assert validation.outcome == "passed", (label, validation.reasons, validation.spearman_mean)
    assert (validation.kind, validation.baseline_id) == ("shadow", serving.pk)
    assert validation.spearman_mean >= 0.5 and validation.divergence <= 0.5
    assert candidate.status == "active"
    serving.refresh_from_db()
    assert serving.status == "retired" and "replaced by alpha v2" in serving.status_reason
    assert served_version() == 2
    if label == "rescaled x3":
        assert validation.divergence < 0.05  # the ranking is the same: only the scale moved
        assert validation.new_max == pytest.approx(3 * validation.old_max, rel=0.05)


@pytest.mark.parametrize(
    ("label", "transform", "failing"),
    [
        ("negated outputs", lambda y: -y, "mean per-date Spearman"),
        ("trained on shuffled targets", shuffled, "mean per-date Spearman"),
    ],
)
def test_bad_candidates_are_rejected_and_the_old_model_keeps_serving(
    serving: ModelVersion, label: str, transform: Any, failing: str
) -> None:
    candidate = train("alpha", transform=transform)
    validation = promote(candidate)
    assert validation.outcome == "rejected", (label, validation.spearman_mean)
    assert validation.reasons[0].startswith(failing)
    assert candidate.status == "rejected" and "shadow validation" in candidate.status_reason
    serving.refresh_from_db()
    assert serving.status == "active"
    assert served_version() == 1
    assert AuditEvent.objects.filter(action="model.reject", object_id=str(candidate.pk)).exists()


def test_a_rejected_candidate_is_never_retried_by_itself(serving: ModelVersion) -> None:
    from django.utils import timezone
    from django_q.models import Schedule
    from django_q.scheduler import scheduler

    from signals.tasks import schedules_ensure

    candidate = train("alpha", transform=lambda y: -y)
    promote(candidate)
    assert candidate.status == "rejected"
    schedules_ensure()
    Schedule.objects.update(next_run=timezone.now())
    scheduler()  # the daily hydration and the watchdog run (sync)
    candidate.refresh_from_db()
    assert candidate.status == "rejected"
    assert candidate.validations.count() == 1
    assert served_version() == 1
    # an operator may ask again: a new, recorded validation (rejected again)
    again = promote(candidate)
    assert again.pk != candidate.validations.earliest("id").pk and again.outcome == "rejected"


def test_promote_model_wait_prints_figures_and_exit_status(serving: ModelVersion) -> None:
    good = train("alpha", seed=99)
    out = StringIO()
    call_command(
        "promote_model",
        "alpha",
        str(good.version),
        "--reason",
        "test promotion",
        "--wait",
        stdout=out,
    )
    text = out.getvalue()
    validation = good.validations.get()
    assert f"validation {validation.pk} (shadow): passed" in text and "spearman (mean):" in text
    assert "divergence:" in text and "pearson:" in text
    bad = train("alpha", transform=lambda y: -y)
    out = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command(
            "promote_model",
            "alpha",
            str(bad.version),
            "--reason",
            "test promotion",
            "--wait",
            stdout=out,
        )
    assert exit_info.value.code == 1
    assert ": rejected" in out.getvalue() and "reason: mean per-date Spearman" in out.getvalue()
    with pytest.raises(CommandError, match="no model alpha v99"):
        call_command(
            "promote_model", "alpha", "99", "--reason", "test promotion", stdout=StringIO()
        )
    with pytest.raises(CommandError, match="is active"):
        call_command(
            "promote_model",
            "alpha",
            str(good.version),
            "--reason",
            "test promotion",
            stdout=StringIO(),
        )


def test_one_validation_at_a_time_and_a_lost_race_is_void(stored_bars: Any) -> None:
    """Without a job cluster the validation stays queued: a second promote is refused; if
    the active model changes meanwhile, the queued comparison is void when it runs."""
    from django_q.models import OrmQ

    from signals.promotion import model_override_activate  # noqa: F401 - documented path

    first = train("alpha")
    pending = promote(first)
    assert (first.status, pending.status) == ("validating", "pending")
    assert OrmQ.objects.count() == 1
    with pytest.raises(Conflict, match="is being validated"):
        promote(train("beta"))
    other = train("gamma")
    from signals.promotion import _activate_unvalidated

    _activate_unvalidated(other, actor="test", reason="race drill")
    done = shadow_validation_run(pending.pk)
    first.refresh_from_db()
    assert (done.outcome, first.status) == ("error", "candidate")
    assert "active model changed" in done.error_text
    assert shadow_validation_run(pending.pk).outcome == "error"  # a re-delivery changes nothing


def test_tampered_artifact_is_refused_and_nothing_changes(
    serving: ModelVersion, settings: Any
) -> None:
    candidate = train("alpha", seed=99)
    path = Path(settings.MODEL_DIR) / candidate.artifact_path
    path.chmod(0o644)
    path.write_text(path.read_text().replace("leaf_value=", "leaf_value=1", 1))
    with pytest.raises(ModelError, match="tampered or corrupt"):
        promote(candidate)
    candidate.refresh_from_db()
    assert candidate.status == "candidate" and not candidate.validations.exists()


def test_skip_shadow_validation_activates_loudly(
    serving: ModelVersion, settings: Any, caplog: Any
) -> None:
    settings.SKIP_SHADOW_VALIDATION = True
    bad = train("alpha", transform=lambda y: -y)
    with caplog.at_level(logging.CRITICAL, logger="signals.promotion"):
        validation = promote(bad)
    assert (validation.kind, validation.outcome) == ("override", "skipped")
    assert bad.status == "active"
    assert any("WITHOUT shadow validation" in r.message for r in caplog.records)
    event = AuditEvent.objects.get(action="model.activate_unvalidated")
    assert "SKIP_SHADOW_VALIDATION=1" in event.reason
    assert served_version() == bad.version


def test_watchdog_closes_a_validation_whose_job_died(stored_bars: Any, settings: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from signals.tasks import watchdog

    candidate = train("alpha")
    validation = promote(candidate)  # queued, never taken
    ShadowValidation.objects.filter(pk=validation.pk).update(
        requested_at=timezone.now()
        - timedelta(seconds=settings.SHADOW_VALIDATION_TIMEOUT_SECONDS + 1)
    )
    assert watchdog()["validations_closed"] == 1
    validation.refresh_from_db()
    candidate.refresh_from_db()
    assert (validation.outcome, candidate.status) == ("error", "candidate")
