"""Helpers for the quote tests: a private ``redis-server`` that tests may kill and restart
(never the shared one), ``stream_quotes`` as a subprocess wired to the test database, the
paper broker and a Redis of the test's choosing, and ingestor rows built through services."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from django.utils import timezone

from marketdata.models import QuoteIngestor
from marketdata.quotes import redis_client
from marketdata.quoting import IngestorStatus, decode_quote, quote_key
from marketdata.services import quote_ingestor_heartbeat, quote_ingestor_register
from tests.helpers import wait_for
from tests.orders.twap_support import MANAGE, manage_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """``redis-server`` on a free loopback port, no persistence: ``kill()`` loses everything
    (like a crashed cache), ``start()`` brings it back empty on the same port."""

    def __init__(self, tmp: Path) -> None:
        self.binary = shutil.which("redis-server")
        assert self.binary, "redis-server must be installed (.ci/run installs it)"
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [
                str(self.binary),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis_client(self.url, timeout=0.5)
        wait_for(lambda: self._pings(client), timeout=10, interval=0.05)
        client.close()
        return self

    @staticmethod
    def _pings(client: Any) -> bool:
        try:
            return bool(client.ping())
        except Exception:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def client(self) -> Any:
        return redis_client(self.url, timeout=1)


@contextlib.contextmanager
def private_redis(tmp: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp).start()
    try:
        yield server
    finally:
        server.kill()


def redis_quote(client: Any, symbol: str) -> Any:
    """The quote Redis holds for ``symbol`` (decoded), or None."""
    raw = client.get(quote_key(symbol))
    return decode_quote(raw) if raw else None


class IngestorProcess:
    """``manage.py stream_quotes`` in a subprocess, output to a file (a pipe nobody reads
    would fill and block it)."""

    def __init__(self, paper: Any, paper_server: Any, tmp: Path, **env: str) -> None:
        self.port = free_port()
        self.log = tmp / f"stream_quotes-{self.port}.log"
        self.env = manage_env(
            paper,
            ALPACA_DATA_STREAM_URL=paper_server.data_stream_url,
            QUOTE_FALLBACK_PORT=str(self.port),
            QUOTE_HEARTBEAT_SECONDS="0.2",
            QUOTE_UNIVERSE_REFRESH_SECONDS="0.3",
            QUOTE_REDIS_RETRY_MAX_SECONDS="0.2",
            LOG_LEVEL="INFO",
            # Only what a test asks for is watched (signals' default universe is not).
            **{"SIGNAL_UNIVERSE": "", **env},
        )
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *args: str) -> IngestorProcess:
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [*MANAGE, "stream_quotes", "--port", str(self.port), *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def row(self) -> QuoteIngestor | None:
        assert self.proc is not None
        return QuoteIngestor.objects.filter(pid=self.proc.pid).first()

    def state(self) -> str | None:
        row = self.row()
        return row.state if row is not None else None


def ingestor_reporting(
    *,
    state: str = "streaming",
    symbols: tuple[str, ...] = ("AAPL",),
    detail: str = "",
    last_quote_at: datetime | None = None,
    now: datetime | None = None,
) -> QuoteIngestor:
    """An ingestor row as a running ``stream_quotes`` leaves it (through its services)."""
    now = now or timezone.now()
    row = quote_ingestor_register(fallback_url="http://127.0.0.1:1", now=now)
    status = IngestorStatus(
        state=state,
        detail=detail,
        symbols=list(symbols),
        connected=state != "disconnected",
        redis_ok=state == "streaming",
        quotes_received=1,
        quotes_written=1,
        quotes_buffered=0,
        redis_errors=0,
        buffer_depth=0,
        last_quote_at=last_quote_at or now,
    )
    quote_ingestor_heartbeat(ingestor_id=row.pk, status=status, now=now)
    row.refresh_from_db()
    return row
