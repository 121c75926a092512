"""The broker's ``trade_updates`` websocket, part of the broker seam (with ``broker.py`` and
``data_stream.py`` the only modules that import alpaca-py): alpaca-py's ``TradingStream`` with
connect and heartbeat hooks, its events as typed ``TradeEventReport``s."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from alpaca.trading.stream import TradingStream
from django.conf import settings

from tradeops.broker_types import (
    OrderReport,
    as_aware,
    enum_value,
    order_report_from_alpaca,
    to_money,
    to_qty,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TradeEventReport:
    """One ``trade_updates`` event. ``order`` is the full order as of the event; its
    ``updated_at`` is the same clock REST answers use, so stream and reconciliation compare."""

    event: str
    order: OrderReport
    timestamp: datetime
    execution_id: str | None
    price: Decimal | None
    qty: int | None
    position_qty: int | None


def trade_event_from_alpaca(update: Any) -> TradeEventReport:
    return TradeEventReport(
        event=enum_value(update.event),
        order=order_report_from_alpaca(update.order),
        timestamp=as_aware(update.timestamp),
        execution_id=str(update.execution_id) if update.execution_id else None,
        price=to_money(update.price),
        qty=to_qty(update.qty) if update.qty is not None else None,
        position_qty=to_qty(update.position_qty) if update.position_qty is not None else None,
    )


class _TradingStream(TradingStream):
    """alpaca-py's stream with a hook after every successful (re)connect and auth, and a
    heartbeat hook called every ``heartbeat_seconds`` with whether the websocket is connected.
    (Overrides alpaca-py's private ``_start_ws``/``close``/``_run_forever``: it has no public
    connect/disconnect callbacks.)"""

    def __init__(
        self,
        *args: Any,
        on_connect: Callable[[], Awaitable[None]],
        on_heartbeat: Callable[[bool], Awaitable[None]] | None = None,
        heartbeat_seconds: float = 5.0,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self._on_connect = on_connect
        self._on_heartbeat = on_heartbeat
        self._heartbeat_seconds = heartbeat_seconds
        self.connected = False

    async def _start_ws(self) -> None:
        await super()._start_ws()
        self.connected = True
        await self._on_connect()

    async def close(self) -> None:
        # alpaca-py closes the socket on every websocket error before it reconnects.
        self.connected = False
        await super().close()

    async def _run_forever(self) -> None:
        # The beat runs on the stream's own event loop: if that loop is wedged, it stops too.
        beat = asyncio.create_task(self._beat()) if self._on_heartbeat is not None else None
        try:
            await super()._run_forever()
        finally:
            if beat is not None:
                beat.cancel()

    async def _beat(self) -> None:
        assert self._on_heartbeat is not None  # noqa: S101 - only started with a hook
        while True:
            try:
                await self._on_heartbeat(self.connected)
            except Exception:  # a failed beat (database away) must not end the stream
                logger.exception("trade stream heartbeat failed")
            await asyncio.sleep(self._heartbeat_seconds)


class TradeUpdateStream:
    """Alpaca's ``trade_updates`` websocket. alpaca-py reconnects by itself with backoff
    (1-30 s); ``on_connect`` runs after each (re)connect because Alpaca never replays what was
    missed while disconnected."""

    def __init__(
        self,
        *,
        on_event: Callable[[TradeEventReport], Awaitable[None]],
        on_connect: Callable[[], Awaitable[None]],
        on_heartbeat: Callable[[bool], Awaitable[None]] | None = None,
        heartbeat_seconds: float = 5.0,
        url: str | None = None,
    ) -> None:
        self._stream = _TradingStream(
            settings.ALPACA_API_KEY,
            settings.ALPACA_SECRET_KEY,
            paper=settings.ALPACA_PAPER,
            url_override=url or settings.ALPACA_STREAM_URL or None,
            on_connect=on_connect,
            on_heartbeat=on_heartbeat,
            heartbeat_seconds=heartbeat_seconds,
        )

        async def handler(update: Any) -> None:
            await on_event(trade_event_from_alpaca(update))

        self._stream.subscribe_trade_updates(handler)

    def run(self) -> None:
        """Blocks until ``stop()``."""
        self._stream.run()

    def stop(self) -> None:
        self._stream.stop()
