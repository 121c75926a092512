"""Helpers for the paper broker tests: fast alpaca-py clients and real stream clients run in
threads (no mocks anywhere)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests
from alpaca.data.live.stock import StockDataStream
from alpaca.trading.stream import TradingStream
from requests.adapters import HTTPAdapter

from paperbroker.control import PaperControl
from paperbroker.server import PaperBrokerServer
from paperbroker.testing import wait_until

KEY = SECRET = "paper"


class TimeoutAdapter(HTTPAdapter):
    """alpaca-py sets no HTTP timeout; tests that hold requests mount this on the session."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        kwargs["timeout"] = kwargs.get("timeout") or self.timeout
        return super().send(request, **kwargs)


def fast(client: Any, timeout: float | None = None) -> Any:
    """No 3 s sleeps between alpaca-py's 429/504 retries; optionally a short HTTP timeout."""
    client._retry_wait = 0
    if timeout is not None:
        client._session.mount("http://", TimeoutAdapter(timeout))
    return client


class StreamRecorder:
    """Runs an alpaca-py stream's blocking ``run()`` in a thread and records what it delivers."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.items: list[Any] = []
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=stream.run, daemon=True)

    async def handler(self, item: Any) -> None:
        with self._lock:
            self.items.append(item)

    def snapshot(self) -> list[Any]:
        with self._lock:
            return list(self.items)

    def wait_for(self, predicate: Callable[[list[Any]], Any], timeout: float = 5.0) -> Any:
        return wait_until(lambda: predicate(self.snapshot()), timeout=timeout)


def _stop(recorder: StreamRecorder, control: PaperControl) -> None:
    # stop() only flags the client; it notices on its next frame or 5 s timeout, so close
    # the connection from the broker side to make it exit now.
    recorder.stream.stop()
    control.disconnect_streams()
    recorder.thread.join(timeout=5)
    assert not recorder.thread.is_alive(), "alpaca-py stream did not stop"


@contextmanager
def trade_updates(broker: PaperBrokerServer, control: PaperControl) -> Iterator[StreamRecorder]:
    """A real ``TradingStream`` listening to trade_updates until the block ends."""
    stream = TradingStream(KEY, SECRET, url_override=broker.stream_url)
    recorder = StreamRecorder(stream)
    stream.subscribe_trade_updates(recorder.handler)
    listeners = control.streams()["trade_update_listeners"]
    recorder.thread.start()
    wait_until(lambda: control.streams()["trade_update_listeners"] == listeners + 1, timeout=5)
    try:
        yield recorder
    finally:
        _stop(recorder, control)


@contextmanager
def quote_stream(
    broker: PaperBrokerServer, control: PaperControl, *symbols: str
) -> Iterator[StreamRecorder]:
    """A real ``StockDataStream`` (msgpack) subscribed to quotes of ``symbols``."""
    stream = StockDataStream(KEY, SECRET, url_override=broker.data_stream_url)
    recorder = StreamRecorder(stream)
    stream.subscribe_quotes(recorder.handler, *symbols)
    recorder.thread.start()
    wanted = set(symbols)
    wait_until(lambda: wanted <= set(control.streams()["quote_subscriptions"]), timeout=5)
    try:
        yield recorder
    finally:
        _stop(recorder, control)
