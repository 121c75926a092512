"""A pre-trade check that holds the race window open (concurrency tests only)."""

from __future__ import annotations

import threading
import time
from typing import Any


def check_hold_lock(intent: Any, ctx: Any) -> None:
    time.sleep(0.3)


# Set by a test: every request waits here (a PRETRADE_PREPARE hook, after its own "does it
# exist yet?" lookup and before the risk transaction) until all of them have arrived.
MEETING: threading.Barrier | None = None


def prepare_meet(intent: Any, ctx: Any) -> None:
    if MEETING is not None:
        MEETING.wait(timeout=30)
