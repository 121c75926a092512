"""Positions, account, clock and calendar through alpaca-py's TradingClient."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import AssetExchange, OrderSide, OrderStatus, PositionSide
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetCalendarRequest,
    LimitOrderRequest,
    MarketOrderRequest,
)


def buy(trading, qty, symbol="AAPL", side="buy"):
    return trading.submit_order(
        MarketOrderRequest(symbol=symbol, qty=qty, side=side, time_in_force="day")
    )


def test_account_starts_with_100k_cash(trading):
    account = trading.get_account()
    assert account.status == "ACTIVE"
    assert (account.cash, account.equity, account.buying_power) == ("100000",) * 3
    assert account.long_market_value == "0"
    assert account.currency == "USD"


def test_account_moves_with_fills_and_prices(trading, control):
    control.set_price("AAPL", "100")
    buy(trading, 10)
    account = trading.get_account()
    assert (account.cash, account.long_market_value, account.equity) == ("99000", "1000", "100000")
    control.set_price("AAPL", "110")
    account = trading.get_account()
    assert (account.equity, account.portfolio_value) == ("100100", "100100")
    assert account.buying_power == "99000"


def test_short_position_has_negative_qty_and_market_value(trading, control):
    control.set_price("AAPL", "100")
    buy(trading, 5, side="sell")
    position = trading.get_open_position("AAPL")
    assert (position.side, position.qty, position.avg_entry_price) == (
        PositionSide.SHORT,
        "-5",
        "100",
    )
    assert position.market_value == "-500"
    control.set_price("AAPL", "90")
    position = trading.get_open_position("AAPL")
    assert position.unrealized_pl == "50"
    account = trading.get_account()
    assert (account.cash, account.short_market_value, account.equity) == (
        "100500",
        "-450",
        "100050",
    )


def test_average_entry_price_rules(trading, control):
    control.set_price("AAPL", "100")
    buy(trading, 10)
    control.set_price("AAPL", "110")
    buy(trading, 10)  # adding re-averages
    assert trading.get_open_position("AAPL").avg_entry_price == "105"
    buy(trading, 5, side="sell")  # reducing keeps the average
    position = trading.get_open_position("AAPL")
    assert (position.qty, position.avg_entry_price) == ("15", "105")
    assert position.cost_basis == "1575"
    control.set_price("AAPL", "120")
    buy(trading, 20, side="sell")  # crossing zero starts again at the fill price
    position = trading.get_open_position("AAPL")
    assert (position.qty, position.avg_entry_price, position.side) == (
        "-5",
        "120",
        PositionSide.SHORT,
    )


def test_positions_list_and_valid_exchange(trading, control):
    control.set_prices({"AAPL": 100, "MSFT": 200})
    buy(trading, 1, "MSFT")
    buy(trading, 2, "AAPL")
    positions = trading.get_all_positions()
    assert [p.symbol for p in positions] == ["AAPL", "MSFT"]
    assert {p.exchange for p in positions} == {AssetExchange.NASDAQ}
    by_asset_id = trading.get_open_position(positions[0].asset_id)
    assert by_asset_id.symbol == "AAPL"


def test_flat_position_is_404(trading, control):
    with pytest.raises(APIError) as excinfo:
        trading.get_open_position("AAPL")
    error = excinfo.value
    assert (error.status_code, error.code, error.message) == (
        404,
        40410000,
        "position does not exist",
    )
    buy(trading, 3)
    buy(trading, 3, side="sell")
    assert trading.get_all_positions() == []
    with pytest.raises(APIError) as excinfo:
        trading.get_open_position("AAPL")
    assert excinfo.value.status_code == 404
    with pytest.raises(APIError) as excinfo:
        trading.close_position("AAPL")
    assert excinfo.value.status_code == 404


def test_close_position_by_qty_percentage_and_all(trading, control):
    control.set_price("AAPL", "100")
    buy(trading, 10)
    order = trading.close_position("AAPL", ClosePositionRequest(qty="3"))
    assert (order.side, order.qty, order.status) == (OrderSide.SELL, "3", OrderStatus.FILLED)
    assert trading.get_open_position("AAPL").qty == "7"
    trading.close_position("AAPL", ClosePositionRequest(percentage="50"))  # floor(3.5) shares
    assert trading.get_open_position("AAPL").qty == "4"
    order = trading.close_position("AAPL")
    assert order.qty == "4"
    assert trading.get_all_positions() == []


def test_close_position_respects_shares_held_by_open_orders(trading, control):
    control.set_price("AAPL", "100")
    buy(trading, 10)
    trading.submit_order(
        LimitOrderRequest(symbol="AAPL", qty=6, side="sell", time_in_force="gtc", limit_price=200)
    )
    assert trading.get_open_position("AAPL").qty_available == "4"
    with pytest.raises(APIError) as excinfo:
        trading.close_position("AAPL")
    assert excinfo.value.status_code == 403
    assert "insufficient qty available" in excinfo.value.message


def test_close_all_positions_with_cancel_orders(trading, control):
    control.set_prices({"AAPL": 100, "MSFT": 200})
    buy(trading, 2, "AAPL")
    buy(trading, 3, "MSFT", side="sell")
    trading.submit_order(
        LimitOrderRequest(symbol="AAPL", qty=1, side="buy", time_in_force="gtc", limit_price=1)
    )
    responses = trading.close_all_positions(cancel_orders=True)
    assert sorted((r.symbol, r.status) for r in responses) == [("AAPL", 200), ("MSFT", 200)]
    assert trading.get_all_positions() == []
    assert trading.get_orders() == []


def test_clock_reports_eastern_time_and_can_be_set(trading, control):
    control.set_clock(is_open=False, now="2024-01-02T14:00:00Z")
    clock = trading.get_clock()
    assert clock.is_open is False
    assert clock.timestamp == datetime(2024, 1, 2, 14, 0, tzinfo=UTC)
    assert clock.timestamp.utcoffset().total_seconds() == -5 * 3600
    assert clock.next_open == datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    assert clock.next_close == datetime(2024, 1, 2, 21, 0, tzinfo=UTC)
    control.set_clock(next_open="2024-01-03T14:30:00Z")
    assert trading.get_clock().next_open == datetime(2024, 1, 3, 14, 30, tzinfo=UTC)


def test_auto_clock_follows_session_hours(trading, control):
    control.set_clock(auto=True, now="2024-01-05T14:29:00Z")  # Friday 09:29 ET
    assert trading.get_clock().is_open is False
    order = buy(trading, 1)
    assert order.status == OrderStatus.ACCEPTED
    control.set_clock(now="2024-01-05T14:31:00Z")
    assert trading.get_clock().is_open is True
    assert trading.get_order_by_id(order.id).status == OrderStatus.FILLED
    control.set_clock(now="2024-01-06T15:00:00Z")  # Saturday
    assert trading.get_clock().next_open == datetime(2024, 1, 8, 14, 30, tzinfo=UTC)


def test_calendar_lists_weekdays_with_hh_mm_times(trading):
    days = trading.get_calendar(GetCalendarRequest(start=date(2024, 1, 4), end=date(2024, 1, 9)))
    assert [d.date for d in days] == [
        date(2024, 1, 4),
        date(2024, 1, 5),
        date(2024, 1, 8),
        date(2024, 1, 9),
    ]
    # alpaca-py builds naive New York wall-clock datetimes from "HH:MM".
    assert (days[0].open.tzinfo, days[0].open.timetuple()[:5]) == (None, (2024, 1, 4, 9, 30))
    assert days[0].close.timetuple()[:5] == (2024, 1, 4, 16, 0)


def test_calendar_skips_nyse_holidays(trading):
    """Good Friday, Juneteenth, Independence Day, Thanksgiving and an observed Christmas."""
    days = trading.get_calendar(GetCalendarRequest(start=date(2024, 3, 27), end=date(2024, 4, 2)))
    assert [d.date.isoformat() for d in days] == [
        "2024-03-27",
        "2024-03-28",
        "2024-04-01",
        "2024-04-02",
    ]
    closed = [date(2024, 6, 19), date(2024, 7, 4), date(2024, 11, 28), date(2022, 12, 26)]
    for day in closed:
        assert trading.get_calendar(GetCalendarRequest(start=day, end=day)) == []
    # the day after Thanksgiving trades (no early closes are modelled)
    assert [
        d.date
        for d in trading.get_calendar(
            GetCalendarRequest(start=date(2024, 11, 29), end=date(2024, 11, 29))
        )
    ] == [date(2024, 11, 29)]


def test_clock_skips_a_holiday_to_the_next_open(trading, control):
    control.set_clock(auto=True, now="2024-07-03T21:00:00Z")  # Wednesday after the close
    clock = trading.get_clock()
    assert clock.is_open is False
    assert clock.next_open == datetime(2024, 7, 5, 13, 30, tzinfo=UTC)  # Friday, not the 4th


def test_asset_lookup(trading):
    asset = trading.get_asset("AAPL")
    assert (asset.symbol, asset.exchange, asset.tradable) == ("AAPL", AssetExchange.NASDAQ, True)
    with pytest.raises(APIError) as excinfo:
        trading.get_asset("not a symbol")
    assert excinfo.value.status_code == 404
