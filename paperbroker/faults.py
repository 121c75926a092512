"""Injected failures and the optional real rate limiter for the ``/v2`` API."""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from paperbroker.models import invalid

FAULT_MODES = (
    "error500",
    "timeout",
    "drop_response_after_commit",
    "delay_after_commit",
    "rate_limit",
    "slow",
)
DEFAULT_DELAYS = {"timeout": 30.0, "delay_after_commit": 30.0, "rate_limit": 60.0, "slow": 2.0}


@dataclass(slots=True)
class Fault:
    """One rule: the next ``count`` requests matching method+path fail in ``mode``.

    ``count`` -1 means forever. ``probability`` < 1 makes the rule take each matching request
    only with that chance (drawn from the book's seeded generator), for soak tests that want
    "10 % of calls fail" rather than "the next N". ``delay`` is how long ``timeout`` holds
    the request, how long ``delay_after_commit`` holds the (already produced) response, and
    for ``rate_limit`` how far ahead ``X-RateLimit-Reset`` points.
    """

    id: int
    method: str
    path: str
    mode: str
    count: int
    delay: float
    probability: float = 1.0
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method not in ("*", method):
            return False
        if self.path.endswith("*"):
            return path.startswith(self.path[:-1])
        return path == self.path

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class FaultBook:
    """Ordered fault rules; the first live rule that matches a request takes it."""

    def __init__(self, seed: int = 0) -> None:
        self._faults: list[Fault] = []
        self._next_id = 1
        self._random = random.Random(seed)

    def add(self, spec: dict[str, Any]) -> Fault:
        mode = spec.get("mode")
        if mode not in FAULT_MODES:
            raise invalid(f"mode must be one of {', '.join(FAULT_MODES)}")
        path = spec.get("path") or "*"
        if not isinstance(path, str) or not path.startswith(("/", "*")):
            raise invalid("path must start with / (a trailing * matches a prefix)")
        try:
            count = int(spec.get("count", 1))
            delay = float(spec.get("delay", DEFAULT_DELAYS.get(mode, 0.0)))
            probability = float(spec.get("probability", 1.0))
        except (TypeError, ValueError):
            raise invalid("count must be an integer, delay and probability numbers") from None
        if count == 0 or count < -1 or delay < 0:
            raise invalid("count must be positive or -1 (forever); delay must be >= 0")
        if not 0 < probability <= 1:
            raise invalid("probability must be in (0, 1]")
        fault = Fault(
            id=self._next_id,
            method=str(spec.get("method") or "*").upper(),
            path=path,
            mode=mode,
            count=count,
            delay=delay,
            probability=probability,
        )
        self._next_id += 1
        self._faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """Consume one hit of the first matching rule that takes the request (its
        ``probability`` drawn), dropping it once exhausted."""
        for fault in self._faults:
            if not fault.matches(method, path):
                continue
            if fault.probability >= 1 or self._random.random() < fault.probability:
                fault.hits += 1
                if fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        self._faults.clear()

    def reseed(self, seed: int) -> None:
        """Make the probabilistic draws repeat (reset with a seed)."""
        self._random.seed(seed)

    def to_json(self) -> list[dict[str, Any]]:
        return [fault.to_json() for fault in self._faults]


class SlidingWindowLimiter:
    """N requests per rolling window per bucket, like Alpaca's 200/min per account.

    Refused requests do not count against the window.
    """

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.limit = limit
        self.window = window
        self._monotonic = monotonic
        self._wall = wall
        self._hits: dict[str, deque[float]] = {}

    def hit(self, bucket: str) -> tuple[bool, dict[str, str]]:
        """Record a request; returns (allowed, X-RateLimit-* headers)."""
        now = self._monotonic()
        hits = self._hits.setdefault(bucket, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        allowed = len(hits) < self.limit
        if allowed:
            hits.append(now)
        oldest = hits[0] if hits else now
        reset = self._wall() + max(0.0, oldest + self.window - now)
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(0, self.limit - len(hits))),
            "X-RateLimit-Reset": str(int(reset + 0.999)),
        }
        return allowed, headers

    def reset(self) -> None:
        self._hits.clear()
