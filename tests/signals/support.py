"""Building real LightGBM models for tests: trained on the stored paper-broker bars, with the
label optionally transformed (x3, negated, shuffled) to make good and bad candidates."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from django.conf import settings
from django.db.models import Max, Min

from marketdata.bars import bars_frame
from marketdata.models import DailyBar
from signals.models import ModelVersion
from signals.registry import model_register
from signals.training import booster_train, training_set_build

Transform = Callable[[np.ndarray], np.ndarray]


def shuffled(target: np.ndarray) -> np.ndarray:
    return np.random.default_rng(11).permutation(target)


def train(
    name: str = "alpha",
    *,
    transform: Transform | None = None,
    seed: int = 7,
    rounds: int = 40,
) -> ModelVersion:
    span = DailyBar.objects.aggregate(first=Min("date"), last=Max("date"))
    bars = bars_frame(symbols=settings.SIGNAL_UNIVERSE, since=span["first"], until=span["last"])
    training = training_set_build(bars)
    target = training.target if transform is None else transform(training.target)
    booster = booster_train(training.matrix, target, rounds=rounds, params={"seed": seed})
    return model_register(data=booster.model_to_string().encode("ascii"), name=name, actor="test")


def activate_first(model: ModelVersion) -> ModelVersion:
    """Promote with django-q in sync mode (the caller uses q_sync): sanity check, go live."""
    from signals.promotion import model_promote

    validation = model_promote(model=model, actor="test", reason="test promotion")
    model.refresh_from_db()
    assert validation.kind == "first"
    assert model.status == ModelVersion.Status.ACTIVE, validation.reasons
    return model


def queued_tasks() -> list[dict]:
    """What is waiting in django-q2's ORM queue (func, args, kwargs), oldest first."""
    from django_q.models import OrmQ
    from django_q.signing import SignedPackage

    return [SignedPackage.loads(row.payload) for row in OrmQ.objects.order_by("id")]


def run_queued() -> list[tuple[str, object]]:
    """Take every queued task and run it here, as a job cluster's worker would."""
    from django.utils.module_loading import import_string
    from django_q.models import OrmQ
    from django_q.signing import SignedPackage

    done = []
    for row in OrmQ.objects.order_by("id"):
        task = SignedPackage.loads(row.payload)
        row.delete()
        func = import_string(task["func"]) if isinstance(task["func"], str) else task["func"]
        done.append((task["func"], func(*task["args"], **task["kwargs"])))
    return done


def activate_queued(model: ModelVersion) -> ModelVersion:
    """Promote and run the queued validation job here; the hydration it asks for stays
    queued (a cold start: the model is active, the cache is not warm yet)."""
    from signals.promotion import model_promote

    validation = model_promote(model=model, actor="test", reason="test promotion")
    (task,) = queued_tasks()
    assert task["func"] == "signals.tasks.shadow_validate"
    from django_q.models import OrmQ

    OrmQ.objects.all().delete()
    from signals.promotion import shadow_validation_run

    assert shadow_validation_run(validation.pk).outcome == "passed"
    model.refresh_from_db()
    return model
