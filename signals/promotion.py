"""Model status changes: promote (shadow validation as a django-q2 job, then activate or
reject), and the audited override that activates without validation.

- The model serving now keeps serving until a candidate passes; a rejected candidate stays
  ``rejected`` and nothing retries it (only an operator promoting it again does).
- One validation at a time: a second promote while one runs is refused (409).
- The job is idempotent (django-q2 delivers at least once): it claims its row first.
- If the active model changed while a candidate was being compared with the old one, the
  comparison is void: the candidate goes back to ``candidate`` and must be promoted again.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django_q.tasks import async_task

from marketdata.bars import bars_frame
from marketdata.models import DailyBar
from signals import metrics
from signals.cache import FeatureCacheUnavailable, cache_has, cache_read
from signals.features import FEATURE_SET_VERSION, HISTORY_BARS, feature_matrix, features_compute
from signals.hydration import hydration_latest_good
from signals.models import ModelVersion, ShadowValidation
from signals.registry import ModelError, model_load
from signals.shadow import ShadowReport, Thresholds, sanity_check, shadow_compare
from tradeops.audit import actor_label, audit_record
from tradeops.errors import Conflict, PermissionDenied
from tradeops.otp import StepUp, step_up_require
from tradeops.reasons import reason_clean

logger = logging.getLogger(__name__)

PERMISSION = "signals.manage_models"
PROMOTABLE = {
    ModelVersion.Status.CANDIDATE,
    ModelVersion.Status.REJECTED,  # an operator may ask again (never the system by itself)
    ModelVersion.Status.RETIRED,  # a rollback is validated like any other candidate
}
VALIDATION_TASK = "signals.tasks.shadow_validate"


def _set_status(model: ModelVersion, status: str, *, actor: Any, reason: str) -> None:
    model.status = status
    model.status_changed_by = actor_label(actor)
    model.status_changed_at = timezone.now()
    model.status_reason = reason
    if status == ModelVersion.Status.ACTIVE:
        model.activated_at = model.status_changed_at
    model.save()


def _locked_active() -> ModelVersion | None:
    return (
        ModelVersion.objects.select_for_update().filter(status=ModelVersion.Status.ACTIVE).first()
    )


def _activate(
    model: ModelVersion, *, actor: Any, reason: str, action: str, step_up: StepUp | None = None
) -> ModelVersion | None:
    """Inside a transaction: retire the active model, make ``model`` active, audit."""
    previous = _locked_active()
    if previous is not None and previous.pk != model.pk:
        _set_status(
            previous, ModelVersion.Status.RETIRED, actor=actor, reason=f"replaced by {model.label}"
        )
    _set_status(model, ModelVersion.Status.ACTIVE, actor=actor, reason=reason)
    audit_record(
        actor=actor,
        action=action,
        object_type="model_version",
        object_id=model.pk,
        reason=reason,
        before={"active": previous.label if previous else None},
        after={
            "active": model.label,
            "sha256": model.artifact_sha256,
            **({"step_up": step_up.as_audit()} if step_up else {}),
        },
    )
    return previous


def model_promote(*, model: ModelVersion, actor: Any, reason: str) -> ShadowValidation:
    """Ask for ``model`` to go live. Its artifact is verified now (a tampered or foreign one
    is refused and nothing changes); the validation itself runs as a django-q2 job."""
    reason = reason_clean(reason)
    if model.status not in PROMOTABLE:
        raise Conflict(
            f"{model.label} is {model.status}: only candidate, rejected or retired "
            "models can be promoted"
        )
    model_load(model)  # raises ModelError: sha256, format, feature set
    if settings.SKIP_SHADOW_VALIDATION:
        logger.critical(
            "SKIP_SHADOW_VALIDATION=1: activating %s WITHOUT shadow validation (asked by %s)",
            model.label,
            actor_label(actor),
        )
        return _activate_unvalidated(
            model, actor=actor, reason=f"SKIP_SHADOW_VALIDATION=1 in the environment. {reason}"
        )
    with transaction.atomic():
        model = ModelVersion.objects.select_for_update().get(pk=model.pk)
        if model.status not in PROMOTABLE:
            raise Conflict(f"{model.label} is {model.status}")
        busy = ModelVersion.objects.filter(status=ModelVersion.Status.VALIDATING).first()
        if busy is not None:
            raise Conflict(f"{busy.label} is being validated; promote again when it is done")
        active = _locked_active()
        if active is None:
            kind = ShadowValidation.Kind.FIRST
        elif settings.SHADOW_VALIDATION_ENABLED:
            kind = ShadowValidation.Kind.SHADOW
        else:
            kind = ShadowValidation.Kind.SANITY
        before = model.status
        _set_status(model, ModelVersion.Status.VALIDATING, actor=actor, reason=reason)
        validation = ShadowValidation.objects.create(
            candidate=model,
            baseline=active if kind == ShadowValidation.Kind.SHADOW else None,
            kind=kind,
            requested_by=actor_label(actor),
            reason=reason,
            min_correlation=settings.SHADOW_MIN_CORRELATION,
            max_divergence=settings.SHADOW_MAX_DIVERGENCE,
            sample_count=settings.SHADOW_SAMPLE_COUNT,
        )
        audit_record(
            actor=actor,
            action="model.promote",
            object_type="model_version",
            object_id=model.pk,
            reason=reason,
            before={"status": before},
            after={"status": model.status, "validation": validation.pk, "kind": kind},
        )
        # The ORM broker's queue row commits with this transaction: no lost or early job.
        async_task(VALIDATION_TASK, validation.pk, task_name=f"shadow-validate-{validation.pk}")
    validation.refresh_from_db()
    return validation


def _activate_unvalidated(
    model: ModelVersion, *, actor: Any, reason: str, step_up: StepUp | None = None
) -> ShadowValidation:
    with transaction.atomic():
        model = ModelVersion.objects.select_for_update().get(pk=model.pk)
        if model.status == ModelVersion.Status.ACTIVE:
            raise Conflict(f"{model.label} is already active")
        validation = ShadowValidation.objects.create(
            candidate=model,
            kind=ShadowValidation.Kind.OVERRIDE,
            status=ShadowValidation.Status.FINISHED,
            outcome=ShadowValidation.Outcome.SKIPPED,
            requested_by=actor_label(actor),
            reason=reason,
            min_correlation=settings.SHADOW_MIN_CORRELATION,
            max_divergence=settings.SHADOW_MAX_DIVERGENCE,
            sample_count=settings.SHADOW_SAMPLE_COUNT,
            finished_at=timezone.now(),
        )
        _activate(
            model,
            actor=actor,
            reason=reason,
            action="model.activate_unvalidated",
            step_up=step_up,
        )
    metrics.SHADOW_VALIDATIONS.labels(ShadowValidation.Outcome.SKIPPED).inc()
    logger.critical(
        "%s ACTIVATED WITHOUT VALIDATION by %s: %s", model.label, actor_label(actor), reason
    )
    _hydrate_if_cold()
    return validation


def model_override_activate(
    *, model: ModelVersion, actor: Any, reason: str, step_up: StepUp | None = None
) -> ShadowValidation:
    """The emergency override: activate without validation. Needs signals.manage_models, a
    reason and a step-up; audited, logged at CRITICAL, recorded as a validation row with
    outcome ``skipped``. The artifact is still verified (integrity is not optional)."""
    if not getattr(actor, "has_perm", lambda p: False)(PERMISSION):
        raise PermissionDenied(f"Permission {PERMISSION} is required.")
    reason = reason_clean(reason)
    step_up_require(step_up, actor=actor, action="model.activate_unvalidated")
    model_load(model)
    return _activate_unvalidated(model, actor=actor, reason=f"override: {reason}", step_up=step_up)


# --- the job ----------------------------------------------------------------------------------
def validation_sample(count: int) -> tuple[pd.DataFrame, str]:
    """The ``count`` most recent feature rows as whole dates (a cross-section is never cut),
    from the feature cache when it is warm, else computed from the stored bars with the same
    feature code. Returns (rows, "cache" | "bars")."""
    universe = sorted(set(settings.SIGNAL_UNIVERSE))
    dates_needed = math.ceil(count / max(len(universe), 1)) + 1
    good = hydration_latest_good()
    if good is not None and good.dates:
        try:
            if cache_has(version=FEATURE_SET_VERSION, day=good.as_of):
                days = [pd.Timestamp(d).date() for d in good.dates[-dates_needed:]]
                return _whole_dates(
                    cache_read(version=FEATURE_SET_VERSION, days=days), count
                ), "cache"
        except FeatureCacheUnavailable as exc:
            logger.warning("validation sample from bars: %s", exc)
    last = DailyBar.objects.filter(symbol__in=universe).aggregate(d=Max("date"))["d"]
    if last is None:
        raise ModelError("no feature rows to validate on: sync bars first", code="not_found")
    recent = (
        DailyBar.objects.filter(symbol__in=universe, date__lte=last)
        .order_by("-date")
        .values_list("date", flat=True)
        .distinct()[: dates_needed + HISTORY_BARS]
    )
    bars = bars_frame(symbols=universe, since=min(recent), until=last)
    return _whole_dates(features_compute(bars), count), "bars"


def _whole_dates(rows: pd.DataFrame, count: int) -> pd.DataFrame:
    rows = rows.sort_values(["date", "symbol"], ascending=[False, True], ignore_index=True)
    if rows.empty:
        return rows
    sizes = rows.groupby("date", sort=False).size()
    keep, total = [], 0
    for day, size in sizes.items():
        keep.append(day)
        total += size
        if total >= count:
            break
    return rows[rows["date"].isin(keep)].sort_values(["date", "symbol"], ignore_index=True)


def shadow_validation_run(validation_id: int) -> ShadowValidation:
    """The django-q2 job body: score the sample with both models, judge, activate or reject.
    Any failure is recorded as outcome ``error`` and the candidate goes back to ``candidate``."""
    claimed = ShadowValidation.objects.filter(
        pk=validation_id, status=ShadowValidation.Status.PENDING
    ).update(status=ShadowValidation.Status.RUNNING, started_at=timezone.now())
    validation = ShadowValidation.objects.select_related("candidate", "baseline").get(
        pk=validation_id
    )
    if not claimed:  # a repeated delivery: the first one handles it
        return validation
    try:
        report, sample, source = _score(validation)
    except Exception as exc:  # catch, record, release
        logger.exception("shadow validation %s could not run", validation_id)
        return validation_fail(validation, f"{exc.__class__.__name__}: {exc}")
    return _finish(validation, report, sample, source)


def _score(validation: ShadowValidation) -> tuple[ShadowReport, dict[str, Any], str]:
    candidate = model_load(validation.candidate)
    rows, source = validation_sample(validation.sample_count)
    matrix = feature_matrix(rows)
    new = candidate.predict(matrix)
    dates = [d.isoformat() for d in rows["date"]]
    sample = {"dates": dates, "symbols": rows["symbol"].tolist(), "new": new.tolist()}
    if validation.kind == ShadowValidation.Kind.SHADOW:
        old = model_load(validation.baseline).predict(matrix)
        sample["old"] = old.tolist()
        thresholds = Thresholds(validation.min_correlation, validation.max_divergence)
        report = shadow_compare(dates=dates, old=old, new=new, thresholds=thresholds)
    else:
        report = sanity_check(dates=dates, new=new)
    # JSON has no NaN/inf: keep them readable in the stored sample
    for side in ("old", "new"):
        if side in sample:
            sample[side] = [v if np.isfinite(v) else str(v) for v in sample[side]]
    return report, sample, source


def validation_fail(validation: ShadowValidation, message: str) -> ShadowValidation:
    with transaction.atomic():
        model = ModelVersion.objects.select_for_update().get(pk=validation.candidate_id)
        if model.status == ModelVersion.Status.VALIDATING:
            _set_status(
                model,
                ModelVersion.Status.CANDIDATE,
                actor="system",
                reason=f"validation {validation.pk} could not run: {message}",
            )
        ShadowValidation.objects.filter(pk=validation.pk).update(
            status=ShadowValidation.Status.FINISHED,
            outcome=ShadowValidation.Outcome.ERROR,
            error_text=message[:4000],
            finished_at=timezone.now(),
        )
    metrics.SHADOW_VALIDATIONS.labels(ShadowValidation.Outcome.ERROR).inc()
    validation.refresh_from_db()
    return validation


def _finish(
    validation: ShadowValidation, report: ShadowReport, sample: dict[str, Any], source: str
) -> ShadowValidation:
    figures = report.figures()
    outcome = (
        ShadowValidation.Outcome.PASSED if report.passed else ShadowValidation.Outcome.REJECTED
    )
    with transaction.atomic():
        model = ModelVersion.objects.select_for_update().get(pk=validation.candidate_id)
        active = _locked_active()
        changed = validation.kind == ShadowValidation.Kind.SHADOW and (
            active is None or active.pk != validation.baseline_id
        )
        if validation.kind == ShadowValidation.Kind.FIRST and active is not None:
            changed = True
        if changed:
            message = "the active model changed during the validation: promote again"
            _set_status(model, ModelVersion.Status.CANDIDATE, actor="system", reason=message)
            outcome, figures["reasons"] = ShadowValidation.Outcome.ERROR, [message]
        elif report.passed:
            _activate(
                model,
                actor="system",
                action="model.activate",
                reason=f"passed shadow validation {validation.pk} ({validation.kind})",
            )
        else:
            why = "; ".join(report.reasons)
            _set_status(
                model,
                ModelVersion.Status.REJECTED,
                actor="system",
                reason=f"shadow validation {validation.pk}: {why}",
            )
            audit_record(
                actor="system",
                action="model.reject",
                object_type="model_version",
                object_id=model.pk,
                reason=why,
                after={"status": model.status},
            )
        ShadowValidation.objects.filter(pk=validation.pk).update(
            status=ShadowValidation.Status.FINISHED,
            outcome=outcome,
            finished_at=timezone.now(),
            sample=sample,
            sample_source=source,
            error_text=figures["reasons"][0] if changed else "",
            **figures,
        )
    metrics.SHADOW_VALIDATIONS.labels(outcome).inc()
    log = logger.info if outcome == ShadowValidation.Outcome.PASSED else logger.warning
    log(
        "shadow validation %s of %s: %s %s",
        validation.pk,
        validation.candidate.label,
        outcome,
        "; ".join(figures["reasons"]),
    )
    if outcome == ShadowValidation.Outcome.PASSED:
        _hydrate_if_cold()
    validation.refresh_from_db()
    return validation


def _hydrate_if_cold() -> None:
    """A first activation (or a cache lost meanwhile) needs a hydration to serve."""
    from signals.tasks import hydration_request

    good = hydration_latest_good()
    try:
        warm = good is not None and cache_has(version=FEATURE_SET_VERSION, day=good.as_of)
    except FeatureCacheUnavailable:
        warm = False
    if not warm:
        hydration_request("activation", coalesce=True)
