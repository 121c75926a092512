"""gunicorn for the TradeOps web process (README, "Production web server").

    gunicorn -c deploy/gunicorn.conf.py

from the repository root. gthread workers: a request spends most of its time waiting for
PostgreSQL and the broker, so threads overlap those waits without an async rewrite; several
processes use the cores. Every value can be set from the environment (README settings table).
"""

from __future__ import annotations

import os
from typing import Any

from tradeops.env import env_bool, env_int, env_str

wsgi_app = "tradeops.wsgi:application"
bind = env_str("WEB_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = env_int("WEB_WORKERS", 2, minimum=1)
threads = env_int("WEB_THREADS", 4, minimum=1)
# Longer than any request may take: a submit waits at most ALPACA_HTTP_TIMEOUT_SECONDS per
# broker call (and a closed gate asks the broker twice more before it).
timeout = env_int("WEB_TIMEOUT_SECONDS", 30, minimum=5)
graceful_timeout = timeout
keepalive = 5
accesslog = env_str("WEB_ACCESS_LOG") or None  # "-" for stdout
errorlog = "-"

# A PostgreSQL connection per request costs more than an order's queries: keep each thread's
# connection for a minute unless the operator chose otherwise (or the pool, DB_POOL=1).
if not env_bool("DB_POOL", False):
    os.environ.setdefault("DB_CONN_MAX_AGE", "60")


def child_exit(server: Any, worker: Any) -> None:
    """A worker that exits leaves its live gauges behind in multiprocess mode (README,
    Metrics): prometheus_client drops them when told the pid is dead."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
