"""django-q2 job of the marketdata app: the daily asset-list load, and its schedule (upserted
whenever a job-cluster worker starts, so a changed ASSETS_REFRESH_CRON takes effect)."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django_q.conf import Conf
from django_q.models import Schedule

from marketdata.assets import AssetListUnavailable, assets_refresh
from tradeops.schedules import schedule_ensure

logger = logging.getLogger(__name__)

SCHEDULE_NAME = "marketdata-assets-refresh"
TASK = "marketdata.tasks.assets_refresh_task"


def assets_refresh_task() -> dict[str, Any]:
    """The job. Idempotent (a repeated delivery loads the list again). A broker outage is
    recorded on the list's state and logged; the cached list stays in use."""
    try:
        result = assets_refresh()
    except AssetListUnavailable as exc:
        return {"refreshed": False, "error": str(exc)}
    return {"refreshed": True, "loaded": result.loaded, "removed": result.removed}


def schedules_ensure() -> Schedule:
    """Upsert (never duplicate) the daily schedule. A new one runs at the scheduler's next
    pass (a first load at cluster start), then on ASSETS_REFRESH_CRON (UTC)."""
    schedule, _ = schedule_ensure(
        SCHEDULE_NAME,
        {
            "func": TASK,
            "schedule_type": Schedule.CRON,
            "cron": settings.ASSETS_REFRESH_CRON,
            "repeats": -1,
        },
    )
    return schedule


def on_worker_spawn(sender: Any = None, **kwargs: Any) -> None:
    """django_q post_spawn: make sure the schedule exists (a worker must come up anyway)."""
    if Conf.SYNC:
        return
    try:
        schedules_ensure()
    except Exception:
        logger.exception("could not upsert the asset-list schedule")
    finally:
        close_old_connections()
