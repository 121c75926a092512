"""The demo's signals step (called by ``manage.py demo``): a private Redis when none is
configured, bars for the demo universe, and a first model trained and promoted. The job cluster
the demo starts then validates it, activates it and hydrates the cache, so /api/v1/signals
answers within the demo's start-up."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings

from marketdata.bars import bars_sync
from signals.models import ModelVersion
from signals.promotion import model_promote
from signals.readiness import signals_state
from signals.training import model_train

DEMO_MODEL = "demo-alpha"
HISTORY_DAYS = 250  # a year of bars: enough to train a first model in about a second

Write = Callable[[str], None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_redis(var: Path, env: dict[str, str], write: Write) -> subprocess.Popen | None:
    """REDIS_URL as configured, else a private redis-server on a free loopback port (no
    persistence) for the demo's processes; None when there is neither (signals stay off)."""
    if settings.REDIS_URL:
        return None
    binary = shutil.which("redis-server")
    if binary is None:
        write("demo: no REDIS_URL and no redis-server on PATH: signals are off")
        return None
    port = _free_port()
    proc = subprocess.Popen(  # noqa: S603 - the redis-server found on PATH
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(var),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                write("demo: the private redis-server did not start: signals are off")
                proc.kill()
                return None
            time.sleep(0.1)
    env["REDIS_URL"] = settings.REDIS_URL = url
    write(f"demo: private Redis for the feature cache on {url}")
    return proc


def demo_signals_prepare(write: Write) -> None:
    """Bars for SIGNAL_UNIVERSE, and (first start only) a model trained and promoted: its
    validation and the hydration run in the job cluster the demo starts next."""
    if not settings.REDIS_URL:
        return
    universe = settings.SIGNAL_UNIVERSE
    write(f"demo: syncing {HISTORY_DAYS} trading days of bars for {len(universe)} symbols...")
    report = bars_sync(symbols=universe, days=HISTORY_DAYS)
    write(f"demo: {report.summary()}")
    if ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).exists():
        return
    pending = ModelVersion.objects.filter(status=ModelVersion.Status.VALIDATING).exists()
    if not pending:
        model = model_train(name=DEMO_MODEL, symbols=universe, actor="command:demo")
        model_promote(model=model, actor="command:demo", reason="demo: first model")
        write(f"demo: trained {model.label}; the job cluster validates and activates it")


def demo_signals_wait(write: Write, alive: Callable[[], bool], timeout: float = 90) -> None:
    """Wait (bounded) until /api/v1/signals can answer."""
    if not settings.REDIS_URL:
        return
    write("demo: waiting for the feature cache to be hydrated...")
    deadline = time.monotonic() + timeout
    state: Any = None
    while time.monotonic() < deadline and alive():
        state = signals_state(request_refill=False)
        if state.ready:
            write(f"demo: signals ready ({state.reason})")
            return
        time.sleep(0.5)
    write(f"demo: signals not ready yet: {state.reason if state else 'stopped'}")
