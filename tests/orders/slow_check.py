"""A pre-trade check that holds the race window open (concurrency tests only)."""

from __future__ import annotations

import time
from typing import Any


def check_hold_lock(intent: Any, ctx: Any) -> None:
    time.sleep(0.3)
