"""``state_file``: the broker's own restarts keep orders, positions, cash and prices."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderStatus
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

from paperbroker.control import PaperControl
from paperbroker.testing import start_test_server, wait_until

from .helpers import KEY, SECRET, fast


def test_state_survives_a_broker_restart(tmp_path):
    state_file = tmp_path / "broker.json"
    server = start_test_server(state_file=state_file)
    try:
        control = PaperControl(server.url)
        trading = fast(TradingClient(KEY, SECRET, url_override=server.url))
        control.set_prices({"AAPL": "100", "MSFT": "50"})
        control.set_symbol("THIN", adv=20_000)
        trading.submit_order(
            MarketOrderRequest(
                symbol="AAPL", qty=10, side="buy", time_in_force="day", client_order_id="keep-1"
            )
        )
        resting = trading.submit_order(
            LimitOrderRequest(
                symbol="MSFT",
                qty=4,
                side="sell",
                time_in_force="gtc",
                limit_price=60,
                client_order_id="keep-2",
            )
        )
        # Saved in the background (debounced) while running, not only at shutdown.
        wait_until(lambda: state_file.exists() and "keep-2" in state_file.read_text(), timeout=3)
        account_before = trading.get_account()
    finally:
        server.stop()

    restarted = start_test_server(state_file=state_file)
    try:
        control = PaperControl(restarted.url)
        trading = fast(TradingClient(KEY, SECRET, url_override=restarted.url))
        account = trading.get_account()
        assert (account.cash, account.equity) == (account_before.cash, account_before.equity)
        assert trading.get_open_position("AAPL").qty == "10"
        assert trading.get_order_by_client_id("keep-1").status == OrderStatus.FILLED
        assert [o.id for o in trading.get_orders()] == [resting.id]
        with pytest.raises(APIError) as excinfo:  # client_order_id history survives too
            trading.submit_order(
                MarketOrderRequest(
                    symbol="AAPL",
                    qty=1,
                    side="buy",
                    time_in_force="day",
                    client_order_id="keep-1",
                )
            )
        assert excinfo.value.status_code == 422
        assert control.state(include_orders=False)["symbols"]["THIN"]["adv"] == 20_000
        control.set_price("MSFT", "61")  # the restored order still works
        assert trading.get_order_by_id(resting.id).status == OrderStatus.FILLED
    finally:
        restarted.stop()
    saved = json.loads(state_file.read_text())
    assert len(saved["orders"]) == 2
    assert Decimal(saved["book"]["prices"]["MSFT"]) == 61  # saved again at shutdown


FRIDAY_IN_SESSION = datetime(2024, 3, 15, 15, 0, tzinfo=UTC)  # 11:00 New York
FRIDAY_AFTER_CLOSE = datetime(2024, 3, 15, 20, 30, tzinfo=UTC)


def test_restart_keeps_runtime_config_that_no_option_overrides(tmp_path):
    state_file = tmp_path / "broker.json"
    server = start_test_server(state_file=state_file)
    try:
        PaperControl(server.url).set_config(seed=7, fill_model="manual")
    finally:
        server.stop()
    restarted = start_test_server(state_file=state_file, tick_seconds=0.2)
    try:
        config = PaperControl(restarted.url).config()
    finally:
        restarted.stop()
    assert (config["seed"], config["fill_model"], config["tick_seconds"]) == (7, "manual", 0.2)


def test_day_orders_saved_in_session_expire_when_restored_after_the_close(tmp_path):
    state_file = tmp_path / "broker.json"
    server = start_test_server(
        state_file=state_file, clock_mode="auto", clock=lambda: FRIDAY_IN_SESSION
    )
    try:
        PaperControl(server.url).set_price("AAPL", "100")
        trading = fast(TradingClient(KEY, SECRET, url_override=server.url))
        day, gtc = (
            trading.submit_order(
                LimitOrderRequest(
                    symbol="AAPL", qty=1, side="buy", time_in_force=tif, limit_price=90
                )
            )
            for tif in ("day", "gtc")
        )
        assert day.status == OrderStatus.NEW
    finally:
        server.stop()

    restarted = start_test_server(state_file=state_file, clock=lambda: FRIDAY_AFTER_CLOSE)
    try:
        trading = fast(TradingClient(KEY, SECRET, url_override=restarted.url))
        assert trading.get_clock().is_open is False  # the saved clock mode (auto) is kept
        assert trading.get_order_by_id(day.id).status == OrderStatus.EXPIRED
        assert trading.get_order_by_id(gtc.id).status == OrderStatus.NEW
    finally:
        restarted.stop()
