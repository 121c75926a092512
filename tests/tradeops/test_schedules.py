"""Schedules are upserted by every job cluster at start; two clusters starting together must
still leave one schedule per name (found by bench/two_nodes.py)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django_q.models import Schedule

from marketdata import tasks as marketdata_tasks
from reconciliation import tasks as reconciliation_tasks
from signals import tasks as signals_tasks

ENSURERS = [
    reconciliation_tasks.schedules_ensure,
    marketdata_tasks.schedules_ensure,
    signals_tasks.schedules_ensure,
]


def names() -> list[str]:
    return sorted(Schedule.objects.values_list("name", flat=True))


@pytest.mark.django_db
def test_a_duplicate_left_by_an_earlier_race_is_removed_not_a_crash() -> None:
    for ensure in ENSURERS:
        ensure()
    expected = names()
    for row in Schedule.objects.all():  # what two clusters racing used to leave behind
        row.pk = None
        row.save()
    assert len(names()) == 2 * len(expected)
    for ensure in ENSURERS:
        ensure()  # used to raise MultipleObjectsReturned
    assert names() == expected


@pytest.mark.django_db(transaction=True)
def test_clusters_starting_together_leave_one_schedule_per_name() -> None:
    errors: list[BaseException] = []

    def cluster_start(barrier: threading.Barrier) -> None:
        try:
            barrier.wait(timeout=10)
            for ensure in ENSURERS:
                ensure()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    expected: list[str] | None = None
    for _ in range(10):
        Schedule.objects.all().delete()
        barrier = threading.Barrier(4)
        threads = [threading.Thread(target=cluster_start, args=(barrier,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        expected = expected or sorted(set(names()))
        assert names() == expected  # one row per name, however the starts interleave
    assert expected and len(expected) == 4
