"""django-q2 tasks and the triggers that enqueue them (DESIGN §9: at-least-once delivery, so
each task is idempotent; tasks take ids, never model instances).

- hydration when a job cluster starts (first worker spawn of a new sentinel), daily after the
  close (a CRON ``Schedule`` upserted at cluster start), when a first model is activated, and
  whenever the cache is found empty (coalesced: one queued refill at a time);
- a watchdog every few minutes: refills a lost cache even when nobody asks for signals, and
  closes validations whose job died (django-q2 kills a task at its timeout without a trace);
- the shadow validation of a promoted candidate.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.tasks import async_task

from signals.hydration import hydration_run
from signals.models import ShadowValidation
from signals.promotion import shadow_validation_run, validation_fail
from tradeops.processes import process_identity
from tradeops.schedules import schedule_ensure

logger = logging.getLogger(__name__)

HYDRATE_TASK = "signals.tasks.hydrate"
DAILY_SCHEDULE = "signals-hydration-daily"
WATCHDOG_SCHEDULE = "signals-watchdog"
PENDING_KEY = "signals:hydration-pending"
PENDING_TTL_SECONDS = 600


def hydrate(trigger: str = "manual", days: int | None = None) -> dict[str, Any]:
    """The hydration task: a repeated delivery is just another (idempotent) hydration."""
    cache.delete(PENDING_KEY)  # from now on a new request needs a new run
    run = hydration_run(trigger=trigger, days=days)
    if run is None:
        return {"skipped": "another hydration is running"}
    return {
        "run": run.pk,
        "status": run.status,
        "ok": run.symbols_ok,
        "failed": run.symbols_failed,
        "reason": run.reason,
    }


def hydration_request(trigger: str, *, coalesce: bool = False) -> str | None:
    """Enqueue a hydration. With ``coalesce`` nothing is enqueued while an earlier request
    has not started yet (it will cover this one)."""
    if coalesce and not cache.add(PENDING_KEY, trigger, PENDING_TTL_SECONDS):
        return None
    logger.info("feature hydration requested (%s)", trigger)
    return async_task(HYDRATE_TASK, trigger=trigger, task_name=f"hydrate-{trigger}")


def shadow_validate(validation_id: int) -> dict[str, Any]:
    validation = shadow_validation_run(validation_id)
    return {"validation": validation.pk, "outcome": validation.outcome}


def watchdog() -> dict[str, Any]:
    """Refill a lost cache; close validations older than SHADOW_VALIDATION_TIMEOUT_SECONDS."""
    from signals.readiness import signals_state

    state = signals_state()  # requests a refill itself when the cache is found empty
    cutoff = timezone.now() - timedelta(seconds=settings.SHADOW_VALIDATION_TIMEOUT_SECONDS)
    stuck = ShadowValidation.objects.filter(
        status__in=[ShadowValidation.Status.PENDING, ShadowValidation.Status.RUNNING],
        requested_at__lt=cutoff,
    )
    closed = 0
    for validation in stuck:
        validation_fail(
            validation,
            f"no result after {settings.SHADOW_VALIDATION_TIMEOUT_SECONDS}s (job lost or killed)",
        )
        closed += 1
    return {"ready": state.ready, "reason": state.reason, "validations_closed": closed}


def schedules_ensure() -> list[Schedule]:
    """Upsert (never duplicate) the daily hydration and the watchdog; a changed CRON gets a
    new next run (django-q2 computes it only when a schedule is created)."""
    daily, created = schedule_ensure(
        DAILY_SCHEDULE,
        {
            "func": HYDRATE_TASK,
            "kwargs": "{'trigger': 'daily'}",
            "schedule_type": Schedule.CRON,
            "cron": settings.FEATURE_HYDRATION_CRON,
            "repeats": -1,
        },
        update=False,
    )
    if not created and daily.cron != settings.FEATURE_HYDRATION_CRON:
        daily.cron = settings.FEATURE_HYDRATION_CRON
        daily.next_run = daily.calculate_next_run()
        daily.save()
    watchdog_schedule, _ = schedule_ensure(
        WATCHDOG_SCHEDULE,
        {
            "func": "signals.tasks.watchdog",
            "schedule_type": Schedule.MINUTES,
            "minutes": 5,
            "repeats": -1,
        },
    )
    return [daily, watchdog_schedule]


def cluster_started(identity: str) -> bool:
    """Once per cluster (its identity): upsert the schedules and ask for the startup
    hydration (the job runs in a worker; nothing waits for it). True if this call did it."""
    if not cache.add(f"signals:cluster-start:{identity}", 1, 7 * 86_400):
        return False
    schedules_ensure()
    hydration_request("startup")  # records a skipped run when no model is active
    return True


def on_worker_spawn(sender: Any = None, proc_name: str = "", **kwargs: Any) -> None:
    """django_q post_spawn, in each new worker: the first worker of a cluster triggers it."""
    if Conf.SYNC:  # sync mode runs tasks inline and sends post_spawn too: no cluster started
        return
    try:
        # host:pid:start of the cluster's sentinel, this worker's parent
        cluster_started(process_identity(os.getppid()))
    except Exception:  # a worker must come up even if this bookkeeping fails
        logger.exception("signals: could not handle the cluster start")
    finally:
        close_old_connections()
