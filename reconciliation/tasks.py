"""django-q2 tasks and the triggers that enqueue them.

- the startup reconciliation runs when a job cluster starts (first worker spawn of a new
  sentinel, see ``on_worker_spawn``) and when a stream consumer or dispatcher starts;
- a periodic ``Schedule`` (upserted at cluster start) runs it every
  RECONCILIATION_INTERVAL_SECONDS (django-q2 schedules have minute granularity);
- a stream (re)connect or an unknown order on the stream asks for one (coalesced).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.tasks import async_task

from reconciliation.engine import reconciliation_run
from reconciliation.gate import process_start_record
from reconciliation.models import ProcessStart
from tradeops.processes import process_identity
from tradeops.schedules import schedule_ensure

logger = logging.getLogger(__name__)

SCHEDULE_NAME = "reconciliation-periodic"
TASK = "reconciliation.tasks.reconcile"
# A queued request whose task was lost (cluster killed before it ran) stops blocking new ones.
PENDING_TTL_SECONDS = 600


def _pending_key(kind: str) -> str:
    return f"reconcile-pending:{kind}"


def reconcile(kind: str = "periodic") -> dict[str, Any]:
    """The django-q task. Idempotent: a repeated delivery is just another reconciliation."""
    cache.delete(_pending_key(kind))  # from now on a new request needs a new run
    outcome = reconciliation_run(kind=kind)
    if outcome.skipped:
        return {"skipped": True}
    run = outcome.run
    return {
        "run": run.pk,
        "status": run.status,
        "updated": run.orders_updated,
        "orphans": run.orphans_found,
        "broker_calls": run.broker_calls,
    }


def reconcile_request(kind: str, *, coalesce: bool = False) -> str | None:
    """Enqueue a reconciliation. With ``coalesce``, a request is dropped only while an earlier
    one of the same kind is queued and has not started: that run starts later, so it covers
    this request too (bursts of stream events). Startup requests are never coalesced."""
    if coalesce and not cache.add(_pending_key(kind), 1, PENDING_TTL_SECONDS):
        return None
    return async_task(TASK, kind=kind, task_name=f"reconcile-{kind}")


def schedules_ensure() -> Schedule:
    """Upsert (never duplicate) the periodic schedule; the interval comes from settings."""
    minutes = max(1, -(-settings.RECONCILIATION_INTERVAL_SECONDS // 60))
    schedule, _ = schedule_ensure(
        SCHEDULE_NAME,
        {
            "func": TASK,
            "kwargs": "{'kind': 'periodic'}",
            "schedule_type": Schedule.MINUTES,
            "minutes": minutes,
            "repeats": -1,
        },
    )
    return schedule


def process_started(*, kind: str, identity: str) -> bool:
    """Record a process start once per identity; True if this call recorded it."""
    _, created = ProcessStart.objects.get_or_create(identity=identity, defaults={"kind": kind})
    if created:
        process_start_record(kind=kind)
        reconcile_request("startup")
    return created


def on_worker_spawn(sender: Any = None, proc_name: str = "", **kwargs: Any) -> None:
    """django_q post_spawn (in each new worker): the first worker of a new cluster records
    the cluster's start, upserts the schedule and asks for the startup reconciliation."""
    if Conf.SYNC:  # sync mode runs tasks inline and sends post_spawn too: no cluster started
        return
    try:
        if process_started(kind="cluster", identity=f"cluster:{process_identity(os.getppid())}"):
            schedules_ensure()
            logger.info("job cluster started: startup reconciliation requested")
    except Exception:  # a worker must come up even if this bookkeeping fails
        logger.exception("could not record the cluster start")
    finally:
        close_old_connections()


def on_order_process_started(sender: Any = None, kind: str = "", **kwargs: Any) -> None:
    process_started(kind=kind, identity=f"{kind}:{process_identity(os.getpid())}")


def on_stream_connected(sender: Any = None, **kwargs: Any) -> None:
    reconcile_request("stream", coalesce=True)


def on_stream_unknown_order(sender: Any = None, **kwargs: Any) -> None:
    logger.warning(
        "stream reported unknown order %s (%s): asking for reconciliation",
        kwargs.get("client_order_id"),
        kwargs.get("symbol"),
    )
    reconcile_request("stream", coalesce=True)
