"""Helpers for the TWAP tests: plans built through the service (with a chosen start), and
``manage.py`` subprocesses (the dispatcher, recovery) wired to the test database and the
paper broker, as they run in production."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import datetime
from io import StringIO
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.db import connection

from orders.models import Order, SlicingPlan
from orders.plans import plan_create
from orders.risk import OrderIntent
from tests.helpers import metric as metric  # re-exported: the TWAP tests import it from here
from tests.helpers import reconcile

MANAGE = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]


def twap(client: Any, **overrides: Any) -> Any:
    """POST a TWAP plan: 100 AAPL over 10 minutes, one slice a minute, unless overridden."""
    body = {
        "symbol": "AAPL",
        "side": "buy",
        "qty": 100,
        "type": "market",
        "time_in_force": "day",
        "duration_minutes": 10,
        "interval_seconds": 60,
    }
    body.update(overrides)
    return client.post("/api/v1/orders/slice", body, format="json")


def make_plan(
    *,
    start: datetime,
    qty: int,
    duration_minutes: int = 1,
    interval_seconds: int = 1,
    symbol: str = "AAPL",
    side: str = "buy",
    strategy: str = "alpha",
    **fields: Any,
) -> SlicingPlan:
    """A plan placed as the API would, but starting at ``start`` (in the past: overdue)."""
    intent = OrderIntent(
        strategy_id=strategy,
        symbol=symbol,
        side=side,
        qty=qty,
        order_type=fields.pop("order_type", "market"),
        time_in_force=fields.pop("time_in_force", "day"),
        **fields,
    )
    outcome = plan_create(
        request=intent,
        duration_minutes=duration_minutes,
        interval_seconds=interval_seconds,
        actor="test",
        now=start,
    )
    assert outcome.created
    return outcome.plan


def slices(plan: SlicingPlan) -> list[Order]:
    return list(Order.objects.filter(plan=plan).order_by("slice_num"))


def statuses(plan: SlicingPlan) -> Counter[str]:
    return Counter(Order.objects.filter(plan=plan).values_list("status", flat=True))


def database_url() -> str:
    """The test database (pytest-django's test_* copy) as a DATABASE_URL for subprocesses."""
    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


def manage_env(paper: Any, **extra: str) -> dict[str, str]:
    """Environment of a manage.py subprocess: test database, paper broker, fast failures."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALPACA_")}
    env.update(  # no ALPACA_*_KEY: unset keys select the paper broker (and its credentials)
        DATABASE_URL=database_url(),
        ALPACA_BASE_URL=paper.base_url,
        ALPACA_DATA_URL=paper.base_url,
        ALPACA_RETRY_WAIT_SECONDS="0",
        ALPACA_HTTP_TIMEOUT_SECONDS="5",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        # A dispatcher's start closes the gate until the startup reconciliation; a plan
        # deferred meanwhile is looked at again quickly.
        TWAP_DISPATCH_RETRY_SECONDS="0.2",
        # Prices from Redis (the test db) or the paper broker, never from a quote ingestor
        # someone else runs on the default port.
        QUOTE_FALLBACK_URL="",
    )
    env.update(extra)
    return env


def start_manage(paper: Any, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*MANAGE, *args],
        env=manage_env(paper, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_manage(paper: Any, *args: str, timeout: float = 120, **env: str) -> str:
    """Run a manage.py command to completion; its output (fails the test on a non-zero exit)."""
    done = subprocess.run(
        [*MANAGE, *args],
        env=manage_env(paper, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def posts_by_coid(paper: Any) -> Counter[str]:
    """How many POST /v2/orders the broker received per client_order_id (faulted ones too)."""
    return Counter(r["client_order_id"] for r in paper.requests(method="POST", path="/v2/orders"))


def broker_orders_by_coid(paper: Any) -> Counter[str]:
    """How many orders the broker holds per client_order_id."""
    return Counter(o["client_order_id"] for o in paper.state()["orders"])


def check_gated(order: Any, plan: Any, ctx: Any) -> Any:
    """A stand-in for reconciliation's gate check (SLICE_PRESEND_CHECKS in tests)."""
    from orders.risk import Rejection

    return Rejection("gated", "reconciliation pending", unavailable=True, retry_after=30)


def check_not_msft(order: Any, plan: Any, ctx: Any) -> Any:
    """A per-plan deferral (like a quarantine) for MSFT only."""
    from orders.risk import Rejection

    if order.symbol != "MSFT":
        return None
    return Rejection("quarantined", "MSFT is fenced", unavailable=True)


def check_hold_while_file_exists(order: Any, plan: Any, ctx: Any) -> None:
    """A pre-send check for crash drills (``twap_crash_settings``): while the file named by
    TWAP_TEST_HOLD_FILE exists, the first slice to get here is held right before it would be
    sent (claimed, not at the broker) and ``<file>.held`` names it, so a test can SIGKILL the
    dispatcher at exactly that point."""
    import time

    path = os.environ.get("TWAP_TEST_HOLD_FILE")
    if not path or not os.path.exists(path):
        return None
    # The marker appears whole (written aside, then linked into place: a reader never sees it
    # empty) and only once (the link fails if it exists: only the first slice is held).
    aside = f"{path}.{os.getpid()}.{order.client_order_id}"
    with open(aside, "w") as marker:
        marker.write(order.client_order_id)
    try:
        os.link(aside, path + ".held")
    except FileExistsError:
        return None
    finally:
        os.remove(aside)
    deadline = time.monotonic() + 60
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    return None


def reconcile_startup() -> None:
    """What a job cluster does when an order-executing process starts: the startup
    reconciliation (which opens the gate and, through its signal, runs slice recovery)."""
    reconcile("--kind", "startup")


def run_once(*args: str) -> str:
    """One pass of the dispatcher (``manage.py run_slices --once``, one worker) in this
    process; its output."""
    out = StringIO()
    call_command("run_slices", "--once", "--workers", "1", *args, stdout=out)
    return out.getvalue()
