"""The ingestor's own HTTP endpoint (QUOTE_FALLBACK_HOST:QUOTE_FALLBACK_PORT): its in-memory
quotes for when Redis is down, its status, its metrics.

A plain ``http.server`` in a thread of ``stream_quotes``: it must not depend on anything that
can be down (Redis, the database), and it only serves what the ingestor has in memory.
Bind it to loopback or a private interface: it has no authentication (prices and counters only).

    GET /quotes                   every symbol's newest quote
    GET /quotes/{SYMBOL}/latest   the newest quote (404 when none, 400 malformed symbol)
    GET /quotes/{SYMBOL}/recent   the ring buffer, newest first
    GET /status                   state, counters, symbols
    GET /metrics                  this process's Prometheus metrics
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from marketdata.ingest import QuoteIngestor
from marketdata.quoting import quote_document
from tradeops.symbols import symbol_or_none

logger = logging.getLogger(__name__)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": {}}}


class _Handler(BaseHTTPRequestHandler):
    server: FallbackServer
    protocol_version = "HTTP/1.1"  # keep-alive: QuoteClient reuses its connection

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        parts = path.split("/")[1:]
        ingestor = self.server.ingestor
        if parts == ["quotes"]:
            self._json(200, {"quotes": [quote_document(q) for q in ingestor.all_latest()]})
        elif len(parts) == 3 and parts[0] == "quotes" and parts[2] in ("latest", "recent"):
            self._symbol(parts[1], parts[2])
        elif parts == ["status"]:
            status = asdict(ingestor.status())
            last = status["last_quote_at"]
            status["last_quote_at"] = last.isoformat() if last else None
            self._json(200, status)
        elif parts == ["metrics"]:
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        else:
            self._json(404, _error("not_found", f"No such endpoint: {path or '/'}"))

    def _symbol(self, raw: str, what: str) -> None:
        symbol = symbol_or_none(raw)
        if symbol is None:
            self._json(400, _error("validation_error", f"Malformed symbol {raw[:20]!r}."))
            return
        if what == "recent":
            recent = self.server.ingestor.recent(symbol)
            self._json(200, {"symbol": symbol, "quotes": [quote_document(q) for q in recent]})
            return
        quote = self.server.ingestor.latest(symbol)
        if quote is None:
            self._json(404, _error("not_found", f"No quote of {symbol} in the buffer."))
        else:
            self._json(200, quote_document(quote))

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        self._json(405, _error("method_not_allowed", "Read-only endpoint."))

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fallback endpoint: " + format, *args)


class FallbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, ingestor: QuoteIngestor, host: str, port: int) -> None:
        self.ingestor = ingestor
        super().__init__((host, port), _Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FallbackServer:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.2}, name="quote-fallback"
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
