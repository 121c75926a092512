"""The periodic reconciliation is a django-q2 Schedule that the cluster's scheduler fires."""

from __future__ import annotations

from typing import Any

import pytest
from django_q.models import Schedule

from reconciliation.gate import gate_verdict
from reconciliation.models import ReconciliationRun

pytestmark = pytest.mark.django_db


def test_the_periodic_schedule_runs_a_reconciliation(
    paper: Any, trading_switches: None, q_sync: None
) -> None:
    """django-q2's own scheduler pass fires the upserted schedule (sync: the task runs inline)."""
    from django.utils import timezone
    from django_q.scheduler import scheduler

    from reconciliation.tasks import schedules_ensure

    schedule = schedules_ensure()
    assert schedules_ensure().pk == schedule.pk  # upsert, never a duplicate
    Schedule.objects.filter(pk=schedule.pk).update(next_run=timezone.now())
    scheduler()
    run = ReconciliationRun.objects.get()
    assert (run.kind, run.status) == ("periodic", "succeeded")
    assert gate_verdict().open
    assert Schedule.objects.get(pk=schedule.pk).next_run > timezone.now()
