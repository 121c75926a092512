"""Consuming Alpaca's trade-update stream into the one update path."""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime
from typing import TYPE_CHECKING

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.utils import timezone

from orders import hooks
from orders.models import TradeStreamRun
from orders.status import Source
from orders.updates import apply_broker_report

if TYPE_CHECKING:  # the stream module imports alpaca-py (and so pandas): only the consumer needs it
    from tradeops.trade_stream import TradeEventReport

logger = logging.getLogger(__name__)


def trade_event_apply(event: TradeEventReport) -> str:
    """Apply one stream event; returns the update path's verdict (for logs and tests).

    Like a request, each event starts and ends with ``close_old_connections``: a consumer that
    runs for weeks must survive a database restart and must not pin a connection."""
    close_old_connections()
    try:
        return _apply(event)
    finally:
        close_old_connections()


def _apply(event: TradeEventReport) -> str:
    result = apply_broker_report(
        event.order, Source.STREAM, event_id=event.execution_id, note=f"stream:{event.event}"
    )
    if result.reason == "unknown_order":
        hooks.stream_unknown_order.send(
            sender=trade_event_apply,
            client_order_id=event.order.client_order_id,
            broker_order_id=event.order.broker_order_id,
            symbol=event.order.symbol,
        )
    return result.reason


def trade_stream_register(*, now: datetime | None = None) -> TradeStreamRun:
    """Record a start of ``stream_trade_updates`` (one row per process start)."""
    now = now or timezone.now()
    return TradeStreamRun.objects.create(
        hostname=socket.gethostname()[:255], pid=os.getpid(), started_at=now, heartbeat_at=now
    )


def trade_stream_heartbeat(*, run_id: int, connected: bool, connects: int, events: int) -> None:
    """Publish that this consumer is alive, whether its websocket is connected, and its counts."""
    TradeStreamRun.objects.filter(pk=run_id).update(
        heartbeat_at=timezone.now(), connected=connected, connects=connects, events=events
    )


def trade_stream_stop(*, run_id: int) -> None:
    now = timezone.now()
    TradeStreamRun.objects.filter(pk=run_id).update(
        stopped_at=now, heartbeat_at=now, connected=False
    )


class StreamConsumer:
    """Glue between the async stream and the synchronous ORM."""

    HEARTBEAT_SECONDS = 5.0

    def __init__(self, *, run_id: int | None = None) -> None:
        self.events = 0
        self.connects = 0
        self.run_id = run_id

    async def on_event(self, event: TradeEventReport) -> None:
        verdict = await sync_to_async(trade_event_apply, thread_sensitive=True)(event)
        self.events += 1
        logger.info(
            "stream %s %s %s/%s -> %s",
            event.event,
            event.order.client_order_id,
            event.order.filled_qty,
            event.order.qty,
            verdict,
        )

    async def on_connect(self) -> None:
        self.connects += 1
        logger.info("trade stream connected (#%d); requesting reconciliation", self.connects)
        await sync_to_async(_announce_connect, thread_sensitive=True)()

    async def on_heartbeat(self, connected: bool) -> None:
        if self.run_id is not None:
            await sync_to_async(_beat, thread_sensitive=True)(
                self.run_id, connected, self.connects, self.events
            )


def _beat(run_id: int, connected: bool, connects: int, events: int) -> None:
    close_old_connections()
    try:
        trade_stream_heartbeat(run_id=run_id, connected=connected, connects=connects, events=events)
    finally:
        close_old_connections()


def _announce_connect() -> None:
    close_old_connections()
    try:
        hooks.stream_connected.send(sender=StreamConsumer)
    finally:
        close_old_connections()
