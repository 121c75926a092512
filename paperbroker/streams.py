"""Websockets: Alpaca's ``trade_updates`` stream (JSON) and the market data stream (msgpack).

The hub turns engine events into frames and fans them out to every connected client through a
per-connection queue, so frames keep the order in which the engine produced them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgpack

from paperbroker.engine import Engine
from paperbroker.timeutil import iso_z

log = logging.getLogger(__name__)

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
DATA_CHANNELS = (
    "trades",
    "quotes",
    "bars",
    "updatedBars",
    "dailyBars",
    "statuses",
    "lulds",
    "corrections",
    "cancelErrors",
)
_CLOSE = object()


@dataclass(eq=False)
class _Client:
    binary: bool = True
    authorized: bool = False
    listening: bool = False
    channels: dict[str, set[str]] = field(
        default_factory=lambda: {channel: set() for channel in DATA_CHANNELS}
    )
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)

    def wants(self, channel: str, symbol: str) -> bool:
        subscribed = self.channels[channel]
        return symbol in subscribed or "*" in subscribed


class StreamHub:
    """Owns the websocket clients; receives engine events on any thread."""

    def __init__(self, engine: Engine, *, api_key: str, secret_key: str) -> None:
        self.engine = engine
        self._credentials = (api_key, secret_key)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._trading: set[_Client] = set()
        self._data: set[_Client] = set()
        self._trade_ids = itertools.count(1)
        engine.subscribe(self._on_engine_event)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()

    def _on_engine_event(self, kind: str, data: dict[str, Any]) -> None:
        if self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._dispatch(kind, data)
        else:
            self._loop.call_soon_threadsafe(self._dispatch, kind, data)

    def _dispatch(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "trade_update":
            frame = json.dumps({"stream": "trade_updates", "data": data}).encode()
            for client in self._trading:
                if client.listening:
                    client.queue.put_nowait(frame)
        elif kind == "quote":
            self.publish_quotes([data["symbol"]])
        elif kind == "trade":
            self._publish_trade(data)

    # ------------------------------------------------------------------ market data fan-out
    def publish_quotes(self, symbols: Iterable[str] | None = None) -> None:
        """Push the current quote of ``symbols`` (default: everything subscribed)."""
        clients = [client for client in self._data if client.authorized]
        if not clients:
            return
        wanted = self.subscribed_quote_symbols() if symbols is None else set(symbols)
        messages = {symbol: self._quote_message(symbol) for symbol in sorted(wanted)}
        for client in clients:
            batch = [msg for symbol, msg in messages.items() if client.wants("quotes", symbol)]
            if batch:
                client.queue.put_nowait(_encode(batch, client.binary))

    def subscribed_quote_symbols(self) -> set[str]:
        symbols: set[str] = set()
        for client in self._data:
            symbols |= client.channels["quotes"]
        if "*" in symbols:
            symbols.discard("*")
            symbols |= set(self.engine.prices)
        return symbols

    def _quote_message(self, symbol: str) -> dict[str, Any]:
        return {"T": "q", "S": symbol} | self.engine.quote(symbol)

    def _publish_trade(self, data: dict[str, Any]) -> None:
        message = {
            "T": "t",
            "S": data["symbol"],
            "i": next(self._trade_ids),
            "x": "V",
            "p": float(data["price"]),
            "s": data["size"],
            "c": ["@"],
            "z": "C",
            "t": self.engine.now(),
        }
        for client in self._data:
            if client.authorized and client.wants("trades", data["symbol"]):
                client.queue.put_nowait(_encode([message], client.binary))

    # ------------------------------------------------------------------ control
    def inject_data(self, messages: list[Any]) -> int:
        """Push ``messages`` as they are (malformed ones too) in one frame to every
        authenticated market data client, whatever it subscribed: drills of a feed that sends
        garbage. Returns how many clients got the frame."""
        clients = [client for client in self._data if client.authorized]
        for client in clients:
            client.queue.put_nowait(_encode(messages, client.binary))
        return len(clients)

    def disconnect_all(self) -> int:
        """Close every websocket (drill: stream outage; clients must reconnect and reconcile)."""
        clients = self._trading | self._data
        for client in clients:
            client.queue.put_nowait(_CLOSE)
        return len(clients)

    def stats(self) -> dict[str, Any]:
        return {
            "trade_update_listeners": sum(1 for c in self._trading if c.listening),
            "trading_connections": len(self._trading),
            "data_connections": len(self._data),
            "quote_subscriptions": sorted(set().union(*(c.channels["quotes"] for c in self._data))),
        }

    # ------------------------------------------------------------------ connections
    async def serve_trading(self, receive: Receive, send: Send) -> None:
        """``/stream``: authenticate, listen, then trade_updates as binary JSON frames
        (like Alpaca's paper endpoint)."""
        await self._serve(self._trading, _Client(binary=True), receive, send, self._on_trading)

    async def serve_data(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        """``/v2/iex`` and ``/v2/sip``: msgpack when the handshake says
        ``Content-Type: application/msgpack`` (alpaca-py does), JSON otherwise."""
        headers = dict(scope.get("headers") or [])
        binary = headers.get(b"content-type", b"").startswith(b"application/msgpack")
        client = _Client(binary=binary)
        client.queue.put_nowait(_encode([{"T": "success", "msg": "connected"}], binary))
        await self._serve(self._data, client, receive, send, self._on_data)

    async def _serve(
        self,
        registry: set[_Client],
        client: _Client,
        receive: Receive,
        send: Send,
        handle: Callable[[_Client, Any], None],
    ) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        registry.add(client)
        pump = asyncio.create_task(self._pump(client, send))
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    break
                raw = message.get("bytes")
                handle(client, raw if raw is not None else message.get("text", ""))
        finally:
            registry.discard(client)
            pump.cancel()

    async def _pump(self, client: _Client, send: Send) -> None:
        try:
            while True:
                frame = await client.queue.get()
                if frame is _CLOSE:
                    await send({"type": "websocket.close", "code": 1001})
                    return
                key = "bytes" if isinstance(frame, bytes) else "text"
                await send({"type": "websocket.send", key: frame})
        except Exception:  # the peer went away while we were sending
            log.debug("websocket send failed", exc_info=True)

    def _on_trading(self, client: _Client, raw: Any) -> None:
        try:
            message = json.loads(raw)
            action, data = message.get("action"), message.get("data") or {}
        except (ValueError, AttributeError):
            client.queue.put_nowait(_json_frame("error", {"error": "invalid syntax"}))
            return
        if action in ("authenticate", "auth"):
            key = data.get("key_id", message.get("key"))
            secret = data.get("secret_key", message.get("secret"))
            client.authorized = (key, secret) == self._credentials
            status = "authorized" if client.authorized else "unauthorized"
            reply: dict[str, Any] = {"status": status, "action": "authenticate"}
            if not client.authorized:
                reply["message"] = "access key verification failed"
            client.queue.put_nowait(_json_frame("authorization", reply))
            if not client.authorized:
                client.queue.put_nowait(_CLOSE)
        elif action == "listen":
            if not client.authorized:
                reply = {"action": "listen", "status": "unauthorized"}
                client.queue.put_nowait(_json_frame("authorization", reply))
                return
            streams = [s for s in (data.get("streams") or []) if s == "trade_updates"]
            client.listening = bool(streams)
            client.queue.put_nowait(_json_frame("listening", {"streams": streams}))
        else:
            client.queue.put_nowait(_json_frame("error", {"error": f"unknown action {action}"}))

    def _on_data(self, client: _Client, raw: Any) -> None:
        try:
            message = msgpack.unpackb(raw) if isinstance(raw, bytes) else json.loads(raw)
            action = message.get("action")
        except (ValueError, AttributeError, msgpack.ExtraData, msgpack.FormatError):
            self._data_reply(client, {"T": "error", "code": 400, "msg": "invalid syntax"})
            return
        if action == "auth":
            if client.authorized:
                self._data_reply(
                    client, {"T": "error", "code": 403, "msg": "already authenticated"}
                )
                return
            credentials = (message.get("key"), message.get("secret"))
            if credentials != self._credentials:
                self._data_reply(client, {"T": "error", "code": 402, "msg": "auth failed"})
                client.queue.put_nowait(_CLOSE)
                return
            client.authorized = True
            self._data_reply(client, {"T": "success", "msg": "authenticated"})
        elif action in ("subscribe", "unsubscribe"):
            if not client.authorized:
                self._data_reply(client, {"T": "error", "code": 401, "msg": "not authenticated"})
                return
            for channel in DATA_CHANNELS:
                symbols = {str(s).upper() if s != "*" else s for s in message.get(channel) or ()}
                if action == "subscribe":
                    client.channels[channel] |= symbols
                else:
                    client.channels[channel] -= symbols
            ack = {channel: sorted(client.channels[channel]) for channel in DATA_CHANNELS}
            self._data_reply(client, {"T": "subscription"} | ack)
        else:
            self._data_reply(client, {"T": "error", "code": 400, "msg": "invalid syntax"})

    def _data_reply(self, client: _Client, message: dict[str, Any]) -> None:
        client.queue.put_nowait(_encode([message], client.binary))


def _json_frame(stream: str, data: dict[str, Any]) -> bytes:
    return json.dumps({"stream": stream, "data": data}).encode()


def _encode(messages: list[dict[str, Any]], binary: bool) -> bytes | str:
    """msgpack with a Timestamp ext for ``t`` (alpaca-py calls ``t.to_datetime()``), or JSON."""
    if binary:
        return msgpack.packb([_map(m, _msgpack_value) for m in messages])
    return json.dumps([_map(m, _json_value) for m in messages])


def _map(message: Any, convert: Callable[[Any], Any]) -> Any:
    """Values of a message converted for the wire; a non-map (injected garbage) as it is."""
    if not isinstance(message, dict):
        return message
    return {k: convert(v) for k, v in message.items()}


def _json_value(value: Any) -> Any:
    return iso_z(value) if isinstance(value, datetime) else value


def _msgpack_value(value: Any) -> Any:
    return msgpack.Timestamp.from_datetime(value) if isinstance(value, datetime) else value
