"""Run the paper broker under uvicorn: in a background thread (tests, demo) or in the
foreground (``manage.py paperbroker``)."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from paperbroker import persistence
from paperbroker.asgi import PaperBrokerApp, build_app
from paperbroker.engine import Engine, EngineConfig
from paperbroker.timeutil import utcnow

log = logging.getLogger(__name__)
START_TIMEOUT_SECONDS = 10.0


class PaperBrokerServer:
    """An Alpaca-compatible broker on one loopback port: REST, control API and websockets.

    ``port=0`` picks a free port (read it back from ``port``/``url`` after ``start()``).
    Options left as None keep the engine defaults, or the values restored from ``state_file``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        state_file: str | Path | None = None,
        seed: int | None = None,
        api_key: str = "paper",
        secret_key: str = "paper",  # noqa: S107 - loopback simulator credential
        rate_limit_per_minute: int | None = None,
        random_walk: bool | None = None,
        tick_seconds: float | None = None,
        fill_model: str | None = None,
        partial_fills: int | None = None,
        initial_cash: str | None = None,
        clock_mode: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.state_file = Path(state_file) if state_file else None
        options: dict[str, Any] = {
            "seed": seed,
            "random_walk": random_walk,
            "tick_seconds": tick_seconds,
            "fill_model": fill_model,
            "partial_fills": partial_fills,
            "initial_cash": initial_cash,
        }
        options = {key: value for key, value in options.items() if value is not None}
        self.engine = Engine(
            EngineConfig().updated(options), clock=clock, clock_mode=clock_mode or "open"
        )
        self.restored = False
        if self.state_file is not None:
            saved = persistence.read_state(self.state_file)
            if saved is not None:
                self.engine.restore(saved)
                self.engine.apply_startup_options(options, clock_mode)
                self.restored = True
        self.app: PaperBrokerApp = build_app(
            self.engine,
            api_key=api_key,
            secret_key=secret_key,
            rate_limit_per_minute=rate_limit_per_minute,
            state_file=self.state_file,
        )
        self._socket: socket.socket | None = None
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ addresses
    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the paper broker is not started")
        return self._port

    @property
    def _public_host(self) -> str:
        return "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host  # noqa: S104

    @property
    def url(self) -> str:
        """Base URL for alpaca-py's ``url_override`` (no trailing slash, no ``/v2``)."""
        return f"http://{self._public_host}:{self.port}"

    @property
    def stream_url(self) -> str:
        return f"ws://{self._public_host}:{self.port}/stream"

    @property
    def data_stream_url(self) -> str:
        return f"ws://{self._public_host}:{self.port}/v2/iex"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> PaperBrokerServer:
        """Serve in a daemon thread; returns once the socket is bound and the app started."""
        if self._thread is not None:
            raise RuntimeError("the paper broker is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # uvicorn writes headers and body separately; without NODELAY, Nagle plus the
        # client's delayed ACK adds ~40 ms to every response. Accepted sockets inherit it.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((self.host, self._requested_port))
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="on",
            http="h11",
            ws="websockets-sansio",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=3,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="paperbroker", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the paper broker did not start")
            time.sleep(0.005)
        return self

    def _run(self) -> None:
        assert self._server is not None and self._socket is not None  # noqa: S101
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def stop(self) -> None:
        """Stop serving (held fault requests end at once) and write the state file."""
        if self._server is None or self._thread is None:
            return
        loop = self.app.loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self.app.release_holds)
        self._server.should_exit = True
        self._thread.join(timeout=15)
        if self._thread.is_alive():
            log.error("paper broker thread did not stop in time")
        if self._socket is not None:
            self._socket.close()
        self._server = None
        self._thread = None
        self.save()

    def save(self) -> None:
        if self.state_file is not None:
            persistence.write_state(self.state_file, self.engine.snapshot())

    def serve_forever(self, on_ready: Callable[[], None] | None = None) -> None:
        """Start, call ``on_ready``, block until SIGTERM/SIGINT, then stop and save state.
        The signal handlers are in place before the socket accepts anything."""
        stop = threading.Event()
        previous = {
            signum: signal.signal(signum, lambda *_: stop.set())
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.start()
            if on_ready is not None:
                on_ready()
            while not stop.wait(0.2):
                if self._thread is None or not self._thread.is_alive():
                    raise RuntimeError("the paper broker stopped unexpectedly")
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.stop()

    def __enter__(self) -> PaperBrokerServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
