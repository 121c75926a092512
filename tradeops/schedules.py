"""One django-q2 ``Schedule`` per name, however many job clusters start at once.

django-q2's ``Schedule.name`` is not unique. Each cluster upserts its schedules when its first
worker starts, so two clusters starting together (two nodes, or a restart of both) could each
insert one: every periodic job then ran twice per period, and every later ``update_or_create``
raised ``MultipleObjectsReturned`` (found by bench/two_nodes.py). The upsert runs under one
advisory lock, and a duplicate left by an earlier race is removed.
"""

from __future__ import annotations

from typing import Any

from django_q.models import Schedule

from tradeops.locks import advisory_lock

SCHEDULE_LOCK_KEY = 0x7472_6F70_7363_6864  # "tropschd"
LOCK_WAIT_SECONDS = 30.0


def schedule_ensure(
    name: str, defaults: dict[str, Any], *, update: bool = True
) -> tuple[Schedule, bool]:
    """The schedule called ``name``: created from ``defaults`` if missing, else updated to
    them (``update=False``: left as it is). Returns (schedule, created)."""
    with advisory_lock(SCHEDULE_LOCK_KEY, name="schedules", wait_seconds=LOCK_WAIT_SECONDS):
        # Not holding it after the wait is as before this lock existed: upsert anyway.
        keep = Schedule.objects.filter(name=name).order_by("pk").first()
        if keep is not None:
            Schedule.objects.filter(name=name).exclude(pk=keep.pk).delete()
        if update:
            return Schedule.objects.update_or_create(name=name, defaults=defaults)
        return Schedule.objects.get_or_create(name=name, defaults=defaults)
