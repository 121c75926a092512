"""The trade-update stream consumer: `manage.py stream_trade_updates` against the paper broker's
websocket, through alpaca-py's real TradingStream."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from orders import hooks
from orders.models import Order, OrderEvent
from tests.helpers import place, wait_for

# The stream consumer's start closes the gate and asks for a reconciliation; q_sync lets the
# requested django-q task run at once, as a job cluster would.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("q_sync")]


def run_stream_while(actions: Callable[[], None], paper: Any, *, seconds: float = 20.0) -> None:
    """Run the command in this (main) thread; ``actions`` run in another once it connected,
    then stop it like an operator would: SIGTERM (``seconds`` is only a safety net)."""
    connected = threading.Event()
    errors: list[BaseException] = []

    def on_connect(**_: Any) -> None:
        connected.set()

    hooks.stream_connected.connect(on_connect, weak=False)

    def worker() -> None:
        try:
            assert connected.wait(10), "stream never connected"
            actions()
        except BaseException as exc:  # surfaced in the test thread below
            errors.append(exc)
        finally:
            connection.close()
            os.kill(os.getpid(), signal.SIGTERM)
            paper.disconnect_streams()  # alpaca-py notices stop() on its next frame

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        call_command("stream_trade_updates", "--seconds", str(seconds))
    finally:
        hooks.stream_connected.disconnect(on_connect)
        thread.join(15)
    if errors:
        raise errors[0]


def test_an_orders_life_arrives_through_the_stream(paper: Any, trader: Any) -> None:
    paper.set_config(fill_model="manual")

    def actions() -> None:
        body = place(trader, qty=10).json()
        assert body["status"] == "new"
        broker_id = body["broker_order_id"]
        paper.fill(broker_id, qty=4, price="100.50")
        wait_for(lambda: Order.objects.get().status == "partially_filled")
        order = Order.objects.get()
        assert order.filled_qty == 4
        paper.fill(broker_id, qty=6, price="101.00")
        wait_for(lambda: Order.objects.get().status == "filled")

    run_stream_while(actions, paper)
    order = Order.objects.get()
    assert (order.status, order.filled_qty) == ("filled", 10)
    assert str(order.filled_avg_price) == "100.8000"
    stream_events = OrderEvent.objects.filter(order=order, source="stream", applied=True)
    assert {"partially_filled", "filled"} <= set(stream_events.values_list("status", flat=True))


def test_a_silent_fill_leaves_the_database_stale(paper: Any, trader: Any) -> None:
    paper.set_config(fill_model="manual")
    seen: dict[str, Any] = {}

    def actions() -> None:
        body = place(trader, qty=10).json()
        paper.fill(body["broker_order_id"], qty=10, price="100.00", silent=True)
        # a later, noisy order proves the stream is alive and delivering
        place(trader, qty=3)
        other = Order.objects.get(qty=3)
        paper.fill(other.broker_order_id, qty=3, price="100.00")
        wait_for(lambda: Order.objects.get(qty=3).status == "filled")
        seen["coid"] = body["client_order_id"]

    run_stream_while(actions, paper)
    stale = Order.objects.get(client_order_id=seen["coid"])
    assert (stale.status, stale.filled_qty) == ("new", 0)
    broker_view = next(o for o in paper.state()["orders"] if o["client_order_id"] == seen["coid"])
    assert broker_view["status"] == "filled"


def test_an_order_the_database_never_heard_of_is_reported(paper: Any, trading_ready: None) -> None:
    unknown: list[str] = []

    def receiver(**kwargs: Any) -> None:
        unknown.append(kwargs["client_order_id"])

    hooks.stream_unknown_order.connect(receiver, weak=False)
    try:
        run_stream_while(
            lambda: (
                paper.place_order(
                    symbol="AAPL",
                    side="buy",
                    qty=1,
                    type="market",
                    time_in_force="day",
                    client_order_id="manual-at-broker-1",
                ),
                wait_for(lambda: unknown),
            ),
            paper,
        )
    finally:
        hooks.stream_unknown_order.disconnect(receiver)
    assert "manual-at-broker-1" in unknown


def test_after_a_reconnect_a_reconciliation_recovers_the_missed_events(
    paper: Any, trader: Any
) -> None:
    """Alpaca never replays events sent while the consumer was away: the reconnect asks for a
    reconciliation, which applies the fill nobody streamed to us."""
    connects: list[int] = []

    def count(**_: Any) -> None:
        connects.append(1)

    hooks.stream_connected.connect(count, weak=False)

    def actions() -> None:
        wait_for(lambda: connects, timeout=5)
        body = place(trader, type="limit", limit_price="50.00", time_in_force="gtc").json()
        assert body["status"] == "new", body
        paper.disconnect_streams()
        paper.fill(body["broker_order_id"], price="50.00")  # streamed to nobody
        wait_for(lambda: len(connects) >= 2, timeout=8)
        wait_for(lambda: Order.objects.get().status == "filled", timeout=5)

    try:
        run_stream_while(actions, paper)
    finally:
        hooks.stream_connected.disconnect(count)
    order = Order.objects.get()
    assert (order.status, order.filled_qty) == ("filled", 10)
    assert order.events.filter(source="reconciliation", applied=True).exists()


def test_the_heartbeat_shows_a_connected_consumer_and_a_stopped_one(
    paper: Any, trading_ready: None, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/metrics' trade_streams_connected (the TradeStreamDown alert) comes from the consumer's
    heartbeat row, written from the stream's event loop while the websocket is up."""
    from orders.models import TradeStreamRun
    from orders.stream import StreamConsumer
    from tests.helpers import scraped

    monkeypatch.setattr(StreamConsumer, "HEARTBEAT_SECONDS", 0.1)
    assert scraped(client, "trade_streams_connected") == 0.0
    assert scraped(client, "trade_stream_heartbeat_age_seconds") is None  # none ever ran
    seen: dict[str, Any] = {}

    def actions() -> None:
        wait_for(lambda: scraped(client, "trade_streams_connected") == 1.0)
        run = TradeStreamRun.objects.get()
        first_beat = run.heartbeat_at
        wait_for(lambda: TradeStreamRun.objects.get().heartbeat_at > first_beat)
        seen["age"] = scraped(client, "trade_stream_heartbeat_age_seconds")
        # The broker drops the websocket: the consumer says so until alpaca-py reconnects.
        paper.disconnect_streams()
        wait_for(lambda: not TradeStreamRun.objects.get().connected, interval=0.01)
        wait_for(lambda: TradeStreamRun.objects.get().connects >= 2, timeout=10)

    run_stream_while(actions, paper)
    assert seen["age"] < 1
    run = TradeStreamRun.objects.get()
    assert run.stopped_at is not None and not run.connected and run.connects >= 2
    assert scraped(client, "trade_streams_connected") == 0.0
