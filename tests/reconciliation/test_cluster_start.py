"""A job cluster starting (`manage.py qcluster`, a real process) records its start, upserts the
periodic schedule and runs the startup reconciliation as a django-q task: the gate opens."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django_q.models import Schedule

from reconciliation.gate import gate_verdict
from reconciliation.models import ProcessStart, ReconciliationRun
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_cluster_start_runs_the_startup_reconciliation(
    paper: Any, paper_server: Any, trading_switches: None
) -> None:
    assert not gate_verdict().open
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "ALPACA_BASE_URL": paper_server.url,
        "ALPACA_DATA_URL": paper_server.url,
        "ALPACA_RETRY_WAIT_SECONDS": "0",
        "Q_WORKERS": "2",
    }
    cluster = subprocess.Popen(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "qcluster"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: ReconciliationRun.objects.filter(kind="startup", status="succeeded").exists(),
            timeout=40,
            interval=0.2,
        )
        assert gate_verdict().open
        assert ProcessStart.objects.filter(kind="cluster").count() == 1  # 2 workers, 1 start
        schedule = Schedule.objects.get(name="reconciliation-periodic")
        assert (schedule.func, schedule.minutes) == ("reconciliation.tasks.reconcile", 5)
    finally:
        cluster.send_signal(signal.SIGTERM)
        try:
            cluster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait()
