"""A real job cluster (`manage.py qcluster`, its own processes): at start it hydrates the
feature cache as a django-q2 job, and a promoted candidate is validated by a worker."""

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

from signals.models import HydrationRun
from signals.promotion import model_promote
from tests.helpers import token_client, wait_for
from tests.signals.conftest import UNIVERSE
from tests.signals.support import activate_queued, train

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_cluster_start_hydrates_and_a_worker_validates(
    stored_bars: Any, paper_server: Any, trading_switches: None
) -> None:
    model = activate_queued(train("alpha"))
    from django_q.models import OrmQ

    OrmQ.objects.all().delete()  # the activation's hydration request: the cluster start must do it
    assert token_client("alpha").get("/api/v1/signals").status_code == 503
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "ALPACA_BASE_URL": paper_server.url,
        "ALPACA_DATA_URL": paper_server.url,
        "ALPACA_RETRY_WAIT_SECONDS": "0",
        "REDIS_URL": settings.REDIS_URL,
        "MODEL_DIR": str(settings.MODEL_DIR),
        "SIGNAL_UNIVERSE": ",".join(UNIVERSE),
        "FEATURE_HYDRATION_DAYS": "15",
        "SHADOW_SAMPLE_COUNT": "60",
        "Q_WORKERS": "2",
    }
    cluster = subprocess.Popen(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "qcluster"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        run = wait_for(
            lambda: HydrationRun.objects.filter(trigger="startup", status="succeeded").first(),
            timeout=60,
            interval=0.2,
        )
        assert run.symbols_ok == len(UNIVERSE)
        assert HydrationRun.objects.filter(trigger="startup").count() == 1  # 2 workers, 1 start
        answer = token_client("alpha").get("/api/v1/signals")
        assert answer.status_code == 200 and answer.json()["model"]["version"] == model.version
        candidate = train("alpha", seed=99)
        validation = model_promote(model=candidate, actor="test", reason="test promotion")
        wait_for(lambda: validation.__class__.objects.get(pk=validation.pk).outcome, timeout=60)
        candidate.refresh_from_db()
        assert candidate.status == "active"
    finally:
        cluster.send_signal(signal.SIGTERM)
        try:
            cluster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait()
