"""Fill models, price-triggered fills and the market clock, observed through alpaca-py."""

from __future__ import annotations

from alpaca.trading.enums import OrderStatus
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    StopLimitOrderRequest,
    StopOrderRequest,
)

from paperbroker.testing import wait_until


def market(qty=10, side="buy", tif="day", **extra):
    return MarketOrderRequest(symbol="AAPL", qty=qty, side=side, time_in_force=tif, **extra)


def limit(price, qty=10, side="buy", tif="gtc"):
    return LimitOrderRequest(
        symbol="AAPL", qty=qty, side=side, time_in_force=tif, limit_price=price
    )


# --------------------------------------------------------------------------- fill models


def test_partial_model_fills_one_part_per_tick(trading, control):
    control.reset(fill_model="partial", partial_fills=3, tick_seconds=0)
    control.set_price("AAPL", "100")
    order = trading.submit_order(market(qty=10))
    assert (order.status, order.filled_qty) == (OrderStatus.PARTIALLY_FILLED, "4")
    control.set_price("AAPL", "110")  # a price change alone does not fill the next part
    assert trading.get_order_by_id(order.id).filled_qty == "4"
    control.tick()
    assert trading.get_order_by_id(order.id).filled_qty == "7"
    control.tick()
    done = trading.get_order_by_id(order.id)
    assert (done.status, done.filled_qty) == (OrderStatus.FILLED, "10")
    assert done.filled_avg_price == "106"  # (4*100 + 3*110 + 3*110) / 10


def test_partial_model_completes_on_background_ticks(trading, control):
    control.reset(fill_model="partial", partial_fills=4, tick_seconds=0.05)
    order = trading.submit_order(market(qty=8))
    assert order.status == OrderStatus.PARTIALLY_FILLED
    wait_until(lambda: trading.get_order_by_id(order.id).status == OrderStatus.FILLED, timeout=3)


def test_partial_model_ioc_cancels_the_rest_and_fok_cancels_all(trading, control):
    control.reset(fill_model="partial", partial_fills=2, tick_seconds=0)
    ioc = trading.submit_order(market(qty=10, tif="ioc"))
    assert (ioc.status, ioc.filled_qty) == (OrderStatus.CANCELED, "5")
    fok = trading.submit_order(market(qty=10, tif="fok"))
    assert (fok.status, fok.filled_qty) == (OrderStatus.CANCELED, "0")


def test_manual_model_waits_for_the_control_api(trading, control):
    control.reset(fill_model="manual")
    order = trading.submit_order(market(qty=10, client_order_id="manual-1"))
    assert order.status == OrderStatus.NEW
    control.tick(3)
    assert trading.get_order_by_id(order.id).status == OrderStatus.NEW
    control.fill(str(order.id), qty=4, price="99.5")
    partly = trading.get_order_by_id(order.id)
    assert (partly.status, partly.filled_qty, partly.filled_avg_price) == (
        OrderStatus.PARTIALLY_FILLED,
        "4",
        "99.5",
    )
    control.fill("manual-1", price="100.5")  # by client_order_id, the rest
    done = trading.get_order_by_id(order.id)
    assert (done.status, done.filled_qty, done.filled_avg_price) == (
        OrderStatus.FILLED,
        "10",
        "100.1",
    )


# --------------------------------------------------------------------------- price triggers


def test_resting_limits_fill_when_the_price_crosses(trading, control):
    control.set_price("AAPL", "100")
    buy = trading.submit_order(limit(95))
    sell = trading.submit_order(limit(105, side="sell"))
    control.set_price("AAPL", "96")
    assert trading.get_order_by_id(buy.id).status == OrderStatus.NEW
    control.set_price("AAPL", "94")  # gap through the limit: filled at the better price
    filled = trading.get_order_by_id(buy.id)
    assert (filled.status, filled.filled_avg_price) == (OrderStatus.FILLED, "94")
    control.set_price("AAPL", "105")
    filled = trading.get_order_by_id(sell.id)
    assert (filled.status, filled.filled_avg_price) == (OrderStatus.FILLED, "105")


def test_stop_becomes_market_when_triggered(trading, control):
    control.set_price("AAPL", "100")
    stop = trading.submit_order(
        StopOrderRequest(symbol="AAPL", qty=2, side="buy", time_in_force="gtc", stop_price=105)
    )
    control.set_price("AAPL", "104.99")
    assert trading.get_order_by_id(stop.id).status == OrderStatus.NEW
    control.set_price("AAPL", "106")
    filled = trading.get_order_by_id(stop.id)
    assert (filled.status, filled.filled_avg_price) == (OrderStatus.FILLED, "106")


def test_stop_limit_triggers_then_waits_for_its_limit(trading, control):
    control.set_price("AAPL", "100")
    order = trading.submit_order(
        StopLimitOrderRequest(
            symbol="AAPL", qty=2, side="sell", time_in_force="gtc", stop_price=95, limit_price=94
        )
    )
    control.set_price("AAPL", "93")  # triggered, but below the sell limit
    assert trading.get_order_by_id(order.id).status == OrderStatus.NEW
    control.set_price("AAPL", "94.2")
    filled = trading.get_order_by_id(order.id)
    assert (filled.status, filled.filled_avg_price) == (OrderStatus.FILLED, "94.2")


def test_random_walk_is_seeded_and_can_fill_limits(trading, control):
    def walk(seed):
        control.reset(random_walk=True, tick_seconds=0, seed=seed, volatility=0.01)
        control.set_price("AAPL", "100")
        control.tick(50)
        return control.prices()["AAPL"]

    assert walk(7) == walk(7)
    assert walk(7) != walk(8)
    control.reset(random_walk=True, tick_seconds=0, seed=7, volatility=0.02)
    control.set_price("AAPL", "100")
    order = trading.submit_order(limit(98))
    control.tick(200)
    assert trading.get_order_by_id(order.id).status == OrderStatus.FILLED


def test_prices_do_not_move_without_random_walk(control):
    control.set_price("AAPL", "100")
    control.tick(20)
    assert control.prices()["AAPL"] == "100"


# --------------------------------------------------------------------------- market clock


def test_closed_market_orders_wait_for_the_open(trading, control):
    control.set_price("AAPL", "100")
    control.set_clock(is_open=False)
    assert trading.get_clock().is_open is False
    order = trading.submit_order(market(qty=5))
    resting = trading.submit_order(limit(101))  # marketable, but the market is closed
    assert (order.status, resting.status) == (OrderStatus.ACCEPTED, OrderStatus.ACCEPTED)
    control.tick(2)
    assert trading.get_order_by_id(order.id).status == OrderStatus.ACCEPTED
    control.set_clock(is_open=True)
    assert trading.get_order_by_id(order.id).status == OrderStatus.FILLED
    assert trading.get_order_by_id(resting.id).status == OrderStatus.FILLED


def test_day_orders_expire_at_the_close_gtc_orders_survive(trading, control):
    control.set_price("AAPL", "100")
    day = trading.submit_order(limit(90, tif="day"))
    gtc = trading.submit_order(limit(90, tif="gtc"))
    control.set_clock(is_open=False)
    expired = trading.get_order_by_id(day.id)
    assert (expired.status, expired.expired_at is not None) == (OrderStatus.EXPIRED, True)
    assert trading.get_order_by_id(gtc.id).status == OrderStatus.NEW
    # A day order placed while closed waits for the next session; it does not expire now.
    waiting = trading.submit_order(limit(90, tif="day"))
    control.set_clock(is_open=False)
    assert trading.get_order_by_id(waiting.id).status == OrderStatus.ACCEPTED
    control.set_clock(is_open=True)
    assert trading.get_order_by_id(waiting.id).status == OrderStatus.NEW


def test_partially_filled_day_order_expires_keeping_its_fills(trading, control):
    control.reset(fill_model="partial", partial_fills=2, tick_seconds=0)
    order = trading.submit_order(market(qty=10))
    control.set_clock(is_open=False)
    expired = trading.get_order_by_id(order.id)
    assert (expired.status, expired.filled_qty) == (OrderStatus.EXPIRED, "5")
    assert trading.get_open_position("AAPL").qty == "5"
