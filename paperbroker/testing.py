"""Test helpers other apps' fixtures build on (no pytest, no alpaca-py imports here)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from paperbroker.server import PaperBrokerServer

T = TypeVar("T")


def start_test_server(**kwargs: Any) -> PaperBrokerServer:
    """A started ``PaperBrokerServer`` on a free loopback port, deterministic by default:
    no random walk (prices move only via ``/_paper/prices``), ticks every 0.1 s so partial
    fills and quote heartbeats still happen. Any ``PaperBrokerServer`` argument overrides.
    Call ``stop()`` when done."""
    kwargs.setdefault("port", 0)
    kwargs.setdefault("random_walk", False)
    kwargs.setdefault("tick_seconds", 0.1)
    return PaperBrokerServer(**kwargs).start()


def wait_until(
    probe: Callable[[], T], *, timeout: float = 5.0, interval: float = 0.01, message: str = ""
) -> T:
    """Poll ``probe`` until it returns something truthy (and return that), or raise
    ``TimeoutError``; for asynchronous effects such as stream events, without fixed sleeps."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(message or f"condition not met within {timeout} s")
        time.sleep(interval)
