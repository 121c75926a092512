"""trade_updates through alpaca-py's TradingStream, quotes through StockDataStream (msgpack),
and the raw handshakes (bad keys, JSON mode) with the websockets library."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import msgpack
import pytest
import requests
import websockets
from alpaca.trading.enums import OrderStatus
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, ReplaceOrderRequest

from paperbroker.control import PaperControlError

from .helpers import quote_stream, trade_updates


def market(coid, qty=10, side="buy", tif="day"):
    return MarketOrderRequest(
        symbol="AAPL", qty=qty, side=side, time_in_force=tif, client_order_id=coid
    )


def events_for(recorder, coid):
    return [u.event for u in recorder.snapshot() if u.order.client_order_id == coid]


def wait_events(recorder, coid, expected):
    recorder.wait_for(
        lambda items: len([u for u in items if u.order.client_order_id == coid]) >= len(expected)
    )
    assert events_for(recorder, coid) == expected


def test_fill_emits_new_then_fill_with_execution_details(broker, trading, control):
    control.set_price("AAPL", "100")
    with trade_updates(broker, control) as stream:
        order = trading.submit_order(market("s-fill"))
        wait_events(stream, "s-fill", ["new", "fill"])
    new, fill = [u for u in stream.snapshot() if u.order.client_order_id == "s-fill"]
    assert new.order.status == OrderStatus.NEW
    assert new.execution_id is None and new.price is None
    assert fill.order.id == order.id and fill.order.status == OrderStatus.FILLED
    assert (fill.price, fill.qty, fill.position_qty) == (100.0, 10.0, 10.0)
    assert isinstance(fill.execution_id, uuid.UUID)
    assert fill.timestamp == fill.order.updated_at == order.updated_at
    assert new.timestamp < fill.timestamp


def test_order_lifecycle_events_in_order(broker, trading, control):
    control.set_price("AAPL", "100")
    with trade_updates(broker, control) as stream:
        resting = trading.submit_order(
            LimitOrderRequest(
                symbol="AAPL",
                qty=5,
                side="buy",
                time_in_force="gtc",
                limit_price=90,
                client_order_id="s-limit",
            )
        )
        control.set_price("AAPL", "89")
        wait_events(stream, "s-limit", ["new", "fill"])
        trading.submit_order(
            LimitOrderRequest(
                symbol="AAPL",
                qty=5,
                side="sell",
                time_in_force="gtc",
                limit_price=500,
                client_order_id="s-cancel",
            )
        )
        trading.cancel_order_by_id(trading.get_order_by_client_id("s-cancel").id)
        wait_events(stream, "s-cancel", ["new", "canceled"])
        trading.submit_order(
            LimitOrderRequest(
                symbol="AAPL",
                qty=5,
                side="sell",
                time_in_force="day",
                limit_price=500,
                client_order_id="s-expire",
            )
        )
        control.set_clock(is_open=False)
        wait_events(stream, "s-expire", ["new", "expired"])
        trading.submit_order(market("s-wait", qty=1))
        control.reject("s-wait")
        wait_events(stream, "s-wait", ["accepted", "rejected"])
        trading.submit_order(market("s-open", qty=1))
        control.set_clock(is_open=True)
        wait_events(stream, "s-open", ["accepted", "new", "fill"])
        replaced = trading.submit_order(
            LimitOrderRequest(
                symbol="AAPL",
                qty=5,
                side="buy",
                time_in_force="gtc",
                limit_price=50,
                client_order_id="s-replaced",
            )
        )
        trading.replace_order_by_id(
            replaced.id, ReplaceOrderRequest(limit_price=51, client_order_id="s-replacement")
        )
        wait_events(stream, "s-replacement", ["new"])
        assert events_for(stream, "s-replaced") == ["new", "replaced"]
    assert trading.get_order_by_id(resting.id).filled_avg_price == "89"
    stamps = [u.timestamp for u in stream.snapshot()]
    assert stamps == sorted(stamps)


def test_partial_fills_report_position_qty(broker, trading, control):
    control.reset(fill_model="partial", partial_fills=3, tick_seconds=0)
    with trade_updates(broker, control) as stream:
        trading.submit_order(market("s-part", qty=9, side="sell"))
        control.tick(2)
        wait_events(stream, "s-part", ["new", "partial_fill", "partial_fill", "fill"])
    fills = [u for u in stream.snapshot() if u.event != "new"]
    assert [(u.qty, u.position_qty) for u in fills] == [(3, -3), (3, -6), (3, -9)]
    assert [u.order.filled_qty for u in fills] == ["3", "6", "9"]


def test_silent_fill_and_cancel_emit_nothing(broker, trading, control):
    control.reset(fill_model="manual")
    with trade_updates(broker, control) as stream:
        orphan = control.place_order("AAPL", 5, "buy", client_order_id="s-orphan")
        other = control.place_order("AAPL", 5, "buy", client_order_id="s-other")
        control.fill(orphan["id"], silent=True)
        control.cancel(other["id"], silent=True)
        trading.submit_order(market("s-marker", qty=1))
        control.fill("s-marker")
        wait_events(stream, "s-marker", ["new", "fill"])
    assert events_for(stream, "s-orphan") == ["new"]  # orphans stream like any order
    assert events_for(stream, "s-other") == ["new"]
    assert trading.get_order_by_client_id("s-orphan").status == OrderStatus.FILLED
    assert trading.get_open_position("AAPL").qty == "6"  # the drift is real


def test_lost_submit_response_still_streams_the_fill(broker, trading, control):
    control.add_fault("POST", "/v2/orders", "drop_response_after_commit")
    with trade_updates(broker, control) as stream:
        with pytest.raises(requests.exceptions.ConnectionError):
            trading.submit_order(market("s-lost"))
        wait_events(stream, "s-lost", ["new", "fill"])


def test_events_fan_out_to_every_listener(broker, trading, control):
    with trade_updates(broker, control) as first, trade_updates(broker, control) as second:
        trading.submit_order(market("s-both"))
        wait_events(first, "s-both", ["new", "fill"])
        wait_events(second, "s-both", ["new", "fill"])


def test_quote_stream_pushes_msgpack_quotes_for_subscribed_symbols(broker, control):
    control.set_prices({"AAPL": "100", "MSFT": "300"})
    with quote_stream(broker, control, "AAPL") as stream:
        control.set_prices({"AAPL": "123.45", "MSFT": "301"})
        quote = stream.wait_for(
            lambda items: next((q for q in items if q.bid_price == 123.43), None)
        )
        stream.wait_for(lambda items: len(items) >= 3)  # heartbeats on every tick
    assert quote.symbol == "AAPL"
    assert (quote.bid_price, quote.ask_price) == (123.43, 123.47)
    assert isinstance(quote.timestamp, datetime) and quote.timestamp.tzinfo is not None
    assert {q.symbol for q in stream.snapshot()} == {"AAPL"}


def test_injected_messages_reach_data_clients_as_given(broker, control):
    control.reset(tick_seconds=0)  # only the injected frame arrives
    with quote_stream(broker, control, "AAPL") as stream:
        assert control.inject_data(
            [
                {"T": "q", "S": "AAPL", "bp": 1.5, "bs": 1, "ap": 1.52, "as": 2,
                 "t": "2026-03-02T15:00:00.5Z"},
                {"T": "q", "S": "AAPL", "bp": "garbage"},
            ]
        ) == 1  # fmt: skip
        quote = stream.wait_for(lambda items: items[0] if items else None)
    assert (quote.bid_price, quote.ask_price) == (1.5, 1.52)
    assert quote.timestamp == datetime(2026, 3, 2, 15, 0, 0, 500000, tzinfo=UTC)
    with pytest.raises(PaperControlError):
        control.inject_data([])


# --------------------------------------------------------------------------- raw protocol


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, timeout=5))


def test_trading_stream_refuses_bad_keys(broker, control):
    async def attempt():
        async with websockets.connect(broker.stream_url) as ws:
            await ws.send(
                json.dumps(
                    {"action": "authenticate", "data": {"key_id": "paper", "secret_key": "bad"}}
                )
            )
            reply = json.loads(await ws.recv())
            await ws.wait_closed()
            return reply

    reply = run(attempt())
    assert reply["stream"] == "authorization"
    assert reply["data"]["status"] == "unauthorized"


def test_data_stream_handshake_errors_in_msgpack(broker, control):
    async def attempt():
        headers = {"Content-Type": "application/msgpack"}
        async with websockets.connect(broker.data_stream_url, additional_headers=headers) as ws:
            frames = [msgpack.unpackb(await ws.recv())]
            await ws.send(msgpack.packb({"action": "subscribe", "quotes": ["AAPL"]}))
            frames.append(msgpack.unpackb(await ws.recv()))
            await ws.send(msgpack.packb({"action": "auth", "key": "paper", "secret": "x"}))
            frames.append(msgpack.unpackb(await ws.recv()))
            await ws.wait_closed()
            return frames

    connected, early, refused = run(attempt())
    assert connected == [{"T": "success", "msg": "connected"}]
    assert early == [{"T": "error", "code": 401, "msg": "not authenticated"}]
    assert refused == [{"T": "error", "code": 402, "msg": "auth failed"}]


def test_data_stream_speaks_json_without_msgpack_header(broker, control):
    async def session():
        async with websockets.connect(broker.url.replace("http", "ws") + "/v2/sip") as ws:
            frames = [json.loads(await ws.recv())]
            await ws.send(json.dumps({"action": "auth", "key": "paper", "secret": "paper"}))
            frames.append(json.loads(await ws.recv()))
            await ws.send(json.dumps({"action": "subscribe", "quotes": ["AAPL"]}))
            frames.append(json.loads(await ws.recv()))
            control.set_price("AAPL", "50")
            frames.append(json.loads(await ws.recv()))
            return frames

    connected, authenticated, ack, quotes = run(session())
    assert (connected[0]["msg"], authenticated[0]["msg"]) == ("connected", "authenticated")
    assert ack[0]["T"] == "subscription" and ack[0]["quotes"] == ["AAPL"]
    assert quotes[0]["T"] == "q" and quotes[0]["S"] == "AAPL"
    assert quotes[0]["t"].endswith("Z")
