"""The paper broker as a raw ASGI application: REST, control API and websockets on one port.

Request path for ``/v2/*``: rate limiter (if enabled) -> injected fault (if one matches) ->
API-key check -> handler -> request log. ``/_paper/*`` (control) skips all of that: it is for
tests and operators on loopback and must keep working while the API is "down".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from paperbroker import api_control, api_data, api_trading, persistence
from paperbroker.engine import Engine
from paperbroker.faults import Fault, SlidingWindowLimiter
from paperbroker.models import CODE_INTERNAL, CODE_RATE_LIMIT, CODE_UNAUTHORIZED, ApiError
from paperbroker.streams import StreamHub
from paperbroker.timeutil import iso_z, utcnow
from paperbroker.web import Request, Response, Route, dispatch, error_response

log = logging.getLogger(__name__)

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
SAVE_INTERVAL_SECONDS = 1.0


class PaperBrokerApp:
    """ASGI callable; see the module docstring for the request pipeline."""

    def __init__(
        self,
        engine: Engine,
        *,
        api_key: str,
        secret_key: str,
        rate_limit_per_minute: int | None,
        state_file: Path | None,
    ) -> None:
        self.engine = engine
        self.credentials = (api_key, secret_key)
        self.hub = StreamHub(engine, api_key=api_key, secret_key=secret_key)
        self.limiter = (
            SlidingWindowLimiter(rate_limit_per_minute) if rate_limit_per_minute else None
        )
        self.state_file = state_file
        self.api_routes = api_trading.ROUTES + api_data.ROUTES
        self.control_routes = api_control.ROUTES
        self._holds: set[asyncio.Event] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        engine.subscribe(self._on_engine_event)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop serving the app (set at lifespan startup)."""
        return self._loop

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    # ------------------------------------------------------------------ lifespan
    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start_background()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop_background()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def start_background(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.hub.bind(self._loop)
        self._tasks.append(asyncio.create_task(self._ticker()))
        if self.state_file is not None:
            self._tasks.append(asyncio.create_task(self._saver()))

    async def stop_background(self) -> None:
        self.release_holds()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _ticker(self) -> None:
        """Random walk, partial fills, clock transitions and quote heartbeats every
        ``tick_seconds``; re-reads the setting at least every 0.1 s so changes apply at once."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            seconds = self.engine.config.tick_seconds
            now = loop.time()
            if seconds <= 0:  # ticks only on POST /_paper/tick
                due = now + 0.1
            else:
                due = min(due, now + seconds)
                if now >= due:
                    self.tick(1)
                    due = now + seconds
            await asyncio.sleep(max(0.0, min(due - loop.time(), 0.1)))

    def tick(self, count: int) -> int:
        tick_no = self.engine.tick(count)
        self.hub.publish_quotes()
        return tick_no

    async def _saver(self) -> None:
        """Debounced persistence: at most one write per interval, only after changes."""
        assert self.state_file is not None  # noqa: S101 - only started with a state file
        saved = self.engine.version
        while True:
            await asyncio.sleep(SAVE_INTERVAL_SECONDS)
            if self.engine.version == saved:
                continue
            saved = self.engine.version
            snapshot = self.engine.snapshot()
            try:
                await asyncio.to_thread(persistence.write_state, self.state_file, snapshot)
            except OSError:
                log.exception("could not save paper broker state to %s", self.state_file)

    def _on_engine_event(self, kind: str, _data: dict[str, Any]) -> None:
        if kind != "reset":
            return
        if self.limiter is not None:
            self.limiter.reset()
        if self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self.release_holds()
        else:
            self._loop.call_soon_threadsafe(self.release_holds)

    def release_holds(self) -> None:
        """End every request held by a ``timeout`` fault now (reset, shutdown)."""
        for event in self._holds:
            event.set()

    # ------------------------------------------------------------------ websockets
    async def _websocket(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path == "/stream":
            await self.hub.serve_trading(receive, send)
        elif path in ("/v2/iex", "/v2/sip", "/v2/delayed_sip", "/v2/test"):
            await self.hub.serve_data(scope, receive, send)
        else:
            await receive()
            await send({"type": "websocket.close", "code": 4404})

    # ------------------------------------------------------------------ http
    async def _http(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        request = await _read_request(scope, receive)
        if request is None:
            return  # the client went away before its body was whole: never processed, never logged
        if request.path.startswith("/_paper"):
            response = self._handle(self.control_routes, request)
        elif request.path.startswith("/v2/"):
            response = await self._api(request, receive, send)
            if response is None:
                return  # connection deliberately dropped
        else:
            response = error_response(ApiError(404, 40410000, "endpoint not found"))
        await _send(send, response)

    def _handle(self, routes: list[Route], request: Request) -> Response:
        try:
            return dispatch(routes, self, request)
        except ApiError as exc:
            return error_response(exc)

    async def _api(self, request: Request, receive: Receive, send: Send) -> Response | None:
        entry = {
            "method": request.method,
            "path": request.path,
            "query": unquote(request.query_string),
            "client_order_id": _client_order_id(request),
            "timestamp": iso_z(utcnow()),
            "status": None,
            "fault": None,
        }
        self.engine.log_request(entry)
        headers: dict[str, str] = {}
        if self.limiter is not None:
            bucket = "data" if request.path.startswith("/v2/stocks") else "trading"
            allowed, headers = self.limiter.hit(bucket)
            if not allowed:
                entry["status"] = 429
                return _rate_limited(headers)
        fault = self.engine.faults.take(request.method, request.path)
        if fault is not None:
            entry["fault"] = fault.mode
            return await self._faulted(fault, request, receive, send, entry, headers)
        response = self._authorized_call(request)
        response.headers.update(headers)
        entry["status"] = response.status
        generated_id = request.method == "POST" and entry["client_order_id"] is None
        if generated_id and response.status == 200 and isinstance(response.payload, dict):
            entry["client_order_id"] = response.payload.get("client_order_id")
        return response

    def _authorized_call(self, request: Request) -> Response:
        presented = (
            request.headers.get("apca-api-key-id"),
            request.headers.get("apca-api-secret-key"),
        )
        if presented != self.credentials:
            return error_response(ApiError(401, CODE_UNAUTHORIZED, "request is not authorized"))
        return self._handle(self.api_routes, request)

    async def _faulted(
        self,
        fault: Fault,
        request: Request,
        receive: Receive,
        send: Send,
        entry: dict[str, Any],
        headers: dict[str, str],
    ) -> Response | None:
        if fault.mode == "error500":
            entry["status"] = 500
            response = error_response(ApiError(500, CODE_INTERNAL, "internal server error"))
            response.headers.update(headers)
            return response
        if fault.mode == "rate_limit":
            entry["status"] = 429
            limit = str(self.limiter.limit if self.limiter else 200)
            reset = str(int(utcnow().timestamp() + fault.delay + 0.999))
            fake = {"X-RateLimit-Limit": limit, "X-RateLimit-Remaining": "0"}
            return _rate_limited(fake | {"X-RateLimit-Reset": reset})
        if fault.mode == "delay_after_commit":
            # The work is done (and streamed) now; only the answer is late. A client that
            # times out or dies meanwhile never learns the outcome: the crash window between
            # "broker accepted" and "database updated".
            response = self._authorized_call(request)
            entry["status"] = response.status
            await self._hold(fault.delay)
            response.headers.update(headers)
            return response
        if fault.mode == "slow":  # a slow broker: held, then answered like any request
            await self._hold(fault.delay)
            response = self._authorized_call(request)
            response.headers.update(headers)
            entry["status"] = response.status
            return response
        if fault.mode == "timeout":
            await self._hold(fault.delay)  # never processed
        else:  # drop_response_after_commit: the work is done, only the answer is lost
            entry["status"] = self._authorized_call(request).status
        await _drop_connection(receive, send)
        return None

    async def _hold(self, seconds: float) -> None:
        event = asyncio.Event()
        self._holds.add(event)
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            pass
        finally:
            self._holds.discard(event)


def build_app(
    engine: Engine,
    *,
    api_key: str = "paper",
    secret_key: str = "paper",  # noqa: S107 - loopback simulator credential
    rate_limit_per_minute: int | None = None,
    state_file: str | Path | None = None,
) -> PaperBrokerApp:
    """The ASGI callable serving ``engine``; uvicorn (or any ASGI server) runs it."""
    return PaperBrokerApp(
        engine,
        api_key=api_key,
        secret_key=secret_key,
        rate_limit_per_minute=rate_limit_per_minute,
        state_file=Path(state_file) if state_file else None,
    )


async def _read_request(scope: dict[str, Any], receive: Receive) -> Request | None:
    """The whole request, or None when the client disconnected before its body ended.

    A broker acts only on a request it received whole: a client killed mid-send (the crash
    drills SIGKILL dispatchers at any instant) must not leave a truncated POST in the request
    log, let alone be answered as a bad order."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    query_string = scope.get("query_string", b"").decode("latin-1")
    return Request(
        method=scope["method"],
        path=scope["path"],
        query_string=query_string,
        query=dict(parse_qsl(query_string, keep_blank_values=True)),
        headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
        body=b"".join(chunks),
    )


def _client_order_id(request: Request) -> str | None:
    if request.path == "/v2/orders:by_client_order_id":
        return request.query.get("client_order_id")
    if request.method == "POST" and request.path == "/v2/orders":
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return None
        value = body.get("client_order_id") if isinstance(body, dict) else None
        return value if isinstance(value, str) else None
    return None


def _rate_limited(headers: dict[str, str]) -> Response:
    return Response(429, {"code": CODE_RATE_LIMIT, "message": "rate limit exceeded"}, headers)


async def _send(send: Send, response: Response) -> None:
    body, headers = response.encode()
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _drop_connection(receive: Receive, send: Send) -> None:
    """Close the TCP connection without an HTTP response, so the client's HTTP library raises
    a connection error (what a lost response looks like). ASGI has no message for that; with
    uvicorn the request cycle that owns ``receive`` holds the transport. Elsewhere, fall back
    to a truncated response, which clients also see as a broken connection."""
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is None:  # pragma: no cover - not uvicorn
        headers = [(b"content-length", b"100")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": True})
        return
    transport.close()
    # Let the server notice the disconnect before we return, so it does not try to answer.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(receive(), 1.0)
