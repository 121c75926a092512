"""Orders through the real alpaca-py TradingClient: submit, validate, look up, list, cancel."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderSide, OrderStatus, OrderType, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    GetOrderByIdRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopOrderRequest,
)

from paperbroker.control import PaperControlError
from paperbroker.models import Order
from paperbroker.portfolio import Portfolio


def market(symbol="AAPL", qty=10, side="buy", tif="day", **extra):
    return MarketOrderRequest(symbol=symbol, qty=qty, side=side, time_in_force=tif, **extra)


def limit(price, symbol="AAPL", qty=10, side="buy", tif="day", **extra):
    return LimitOrderRequest(
        symbol=symbol, qty=qty, side=side, time_in_force=tif, limit_price=price, **extra
    )


def api_error(excinfo: pytest.ExceptionInfo[APIError]) -> tuple[int, int, str]:
    error = excinfo.value
    return error.status_code, error.code, error.message


# --------------------------------------------------------------------------- submit


def test_market_order_fills_before_post_returns(trading, control):
    control.set_price("AAPL", "100.00")
    order = trading.submit_order(market(client_order_id="m-1"))
    assert order.status == OrderStatus.FILLED
    assert order.client_order_id == "m-1"
    assert order.filled_qty == "10"
    assert order.filled_avg_price == "100"
    assert order.type == OrderType.MARKET
    assert order.submitted_at.tzinfo is not None
    assert order.updated_at > order.submitted_at


def test_client_order_id_is_generated_when_absent(trading):
    order = trading.submit_order(market())
    assert uuid.UUID(order.client_order_id)
    assert trading.get_order_by_client_id(order.client_order_id).id == order.id


@pytest.mark.parametrize("tif", ["day", "gtc", "ioc", "fok"])
def test_market_order_every_time_in_force_fills(trading, tif):
    order = trading.submit_order(market(tif=tif))
    assert order.status == OrderStatus.FILLED
    assert order.time_in_force == TimeInForce(tif)


@pytest.mark.parametrize("tif", ["day", "gtc"])
def test_resting_limit_order_stays_new(trading, control, tif):
    control.set_price("AAPL", "100")
    order = trading.submit_order(limit(95, tif=tif))
    assert order.status == OrderStatus.NEW
    assert order.limit_price == "95"
    assert order.filled_qty == "0"


def test_marketable_limit_fills_at_submit_at_the_better_price(trading, control):
    control.set_price("AAPL", "100")
    order = trading.submit_order(limit(101.5))
    assert order.status == OrderStatus.FILLED
    assert order.filled_avg_price == "100"


@pytest.mark.parametrize("tif", ["ioc", "fok"])
def test_unmarketable_ioc_fok_limit_is_canceled_at_once(trading, control, tif):
    control.set_price("AAPL", "100")
    order = trading.submit_order(limit(90, tif=tif))
    assert order.status == OrderStatus.CANCELED
    assert order.canceled_at is not None


def test_stop_and_stop_limit_orders_rest_until_triggered(trading, control):
    control.set_price("AAPL", "100")
    stop = trading.submit_order(
        StopOrderRequest(symbol="AAPL", qty=1, side="buy", time_in_force="gtc", stop_price=105)
    )
    stop_limit = trading.submit_order(
        StopLimitOrderRequest(
            symbol="AAPL", qty=1, side="sell", time_in_force="day", stop_price=95, limit_price=94
        )
    )
    assert (stop.status, stop.type) == (OrderStatus.NEW, OrderType.STOP)
    assert (stop_limit.status, stop_limit.type) == (OrderStatus.NEW, OrderType.STOP_LIMIT)
    assert stop_limit.stop_price == "95"


def test_stop_on_the_wrong_side_of_the_market_is_refused(trading, control):
    control.set_price("AAPL", "100")
    with pytest.raises(APIError) as excinfo:
        trading.submit_order(
            StopOrderRequest(symbol="AAPL", qty=1, side="buy", time_in_force="day", stop_price=99)
        )
    status, code, message = api_error(excinfo)
    assert (status, code) == (422, 42210000)
    assert "stop price must be greater than current price" in message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"qty": 1.5}, "fractional orders are not supported"),
        ({"qty": 0}, "qty must be > 0"),
        ({"type": "limit"}, "limit_price is required for limit orders"),
        ({"type": "stop"}, "stop_price is required for stop orders"),
        ({"type": "stop_limit", "stop_price": 1}, "limit_price is required"),
        ({"limit_price": 10}, "limit_price is not allowed for market orders"),
        ({"type": "limit", "limit_price": 10.001}, "sub-penny increment"),
        ({"time_in_force": "opg"}, "time_in_force opg is not supported"),
        ({"time_in_force": "week"}, "invalid time_in_force"),
        ({"side": "hold"}, "invalid side"),
        ({"type": "trailing_stop", "trail_percent": 1}, "not supported"),
        ({"symbol": "not a symbol"}, "not found"),
        ({"client_order_id": "x" * 129}, "no more than 128 characters"),
        ({"extended_hours": True}, "extended hours order must be DAY limit orders"),
        ({"qty": None, "notional": 100}, "notional orders are not supported"),
    ],
)
def test_invalid_orders_get_422_like_alpaca(trading, body, message):
    # trading.post() is alpaca-py's own transport: bodies its request models would refuse.
    payload = {"symbol": "AAPL", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"}
    payload = {k: v for k, v in (payload | body).items() if v is not None}
    with pytest.raises(APIError) as excinfo:
        trading.post("/orders", payload)
    status, code, text = api_error(excinfo)
    assert (status, code) == (422, 42210000)
    assert message in text
    assert trading.get_orders(GetOrdersRequest(status="all")) == []


def test_qty_as_string_and_128_char_client_order_id_are_accepted(trading):
    coid = "c" * 128
    order = trading.post(
        "/orders",
        {
            "symbol": "aapl",
            "qty": "3",
            "side": "buy",
            "type": "market",
            "time_in_force": "day",
            "client_order_id": coid,
        },
    )
    assert (order["qty"], order["symbol"], order["client_order_id"]) == ("3", "AAPL", coid)


def test_duplicate_client_order_id_is_422(trading):
    trading.submit_order(market(client_order_id="dup-1"))
    with pytest.raises(APIError) as excinfo:
        trading.submit_order(market(client_order_id="dup-1"))
    assert api_error(excinfo) == (422, 40010001, "client_order_id must be unique")


def test_duplicate_client_order_id_is_422_even_after_cancel(trading, control):
    control.set_price("AAPL", "100")
    first = trading.submit_order(limit(50, client_order_id="dup-2"))
    trading.cancel_order_by_id(first.id)
    assert trading.get_order_by_id(first.id).status == OrderStatus.CANCELED
    with pytest.raises(APIError) as excinfo:
        trading.submit_order(limit(50, client_order_id="dup-2"))
    assert api_error(excinfo) == (422, 40010001, "client_order_id must be unique")
    assert control.submit_count("dup-2") == 2


def test_insufficient_buying_power_is_403(trading, control):
    control.set_price("AAPL", "100")
    with pytest.raises(APIError) as excinfo:
        trading.submit_order(market(qty=1001))
    assert api_error(excinfo) == (403, 40310000, "insufficient buying power")
    trading.submit_order(limit(100, qty=900, tif="gtc"))  # fills: 90,000 spent
    with pytest.raises(APIError):
        trading.submit_order(limit(50, qty=201, tif="gtc"))  # 10,050 > 10,000 left
    resting = trading.submit_order(limit(50, qty=199, tif="gtc"))
    assert resting.status == OrderStatus.NEW
    with pytest.raises(APIError):  # the resting order holds its buying power
        trading.submit_order(limit(50, qty=2, tif="gtc"))


# --------------------------------------------------------------------------- look up


def test_get_order_by_id_and_client_id(trading):
    order = trading.submit_order(market(client_order_id="look-1"))
    assert trading.get_order_by_id(order.id).client_order_id == "look-1"
    nested = trading.get_order_by_id(order.id, GetOrderByIdRequest(nested=True))
    assert nested.id == order.id
    assert trading.get_order_by_client_id("look-1").id == order.id


def test_unknown_orders_are_404(trading):
    with pytest.raises(APIError) as excinfo:
        trading.get_order_by_id(uuid.uuid4())
    assert api_error(excinfo) == (404, 40410000, "order not found")
    with pytest.raises(APIError) as excinfo:
        trading.get_order_by_client_id("nope")
    assert api_error(excinfo) == (404, 40410000, "order not found")


# --------------------------------------------------------------------------- cancel


def test_cancel_open_order_is_204_then_not_cancelable(trading, control):
    control.set_price("AAPL", "100")
    order = trading.submit_order(limit(90))
    assert trading.cancel_order_by_id(order.id) is None
    canceled = trading.get_order_by_id(order.id)
    assert canceled.status == OrderStatus.CANCELED
    assert canceled.canceled_at is not None
    with pytest.raises(APIError) as excinfo:
        trading.cancel_order_by_id(order.id)
    assert api_error(excinfo) == (422, 42210000, "order is not cancelable")


def test_cancel_filled_order_is_422_and_unknown_is_404(trading):
    filled = trading.submit_order(market())
    with pytest.raises(APIError) as excinfo:
        trading.cancel_order_by_id(filled.id)
    assert excinfo.value.status_code == 422
    with pytest.raises(APIError) as excinfo:
        trading.cancel_order_by_id(uuid.uuid4())
    assert excinfo.value.status_code == 404


def test_cancel_all_orders_returns_207_per_order(broker, trading, control):
    control.set_price("AAPL", "100")
    ids = {str(trading.submit_order(limit(90, tif="gtc")).id) for _ in range(3)}
    trading.submit_order(market())
    responses = trading.cancel_orders()
    assert {str(r.id) for r in responses} == ids
    assert {r.status for r in responses} == {200}
    assert trading.get_orders() == []
    log = control.requests(method="DELETE", path="/v2/orders")
    assert [entry["status"] for entry in log] == [207]


# --------------------------------------------------------------------------- list


def test_list_defaults_to_open_orders_newest_first(trading, control):
    control.set_price("AAPL", "100")
    first = trading.submit_order(limit(90))
    trading.submit_order(market())
    second = trading.submit_order(limit(91))
    listed = trading.get_orders()
    assert [o.id for o in listed] == [second.id, first.id]
    closed = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED))
    assert [o.status for o in closed] == [OrderStatus.FILLED]
    everything = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, nested=True))
    assert len(everything) == 3


def test_list_filters_by_symbols_side_and_limit(trading, control):
    control.set_prices({"AAPL": 100, "MSFT": 200, "TSLA": 50})
    for symbol in ("AAPL", "MSFT", "TSLA"):
        trading.submit_order(market(symbol=symbol, qty=1))
        trading.submit_order(market(symbol=symbol, qty=1, side="sell"))
    request = GetOrdersRequest(status="all", symbols=["AAPL", "TSLA"], side=OrderSide.SELL)
    listed = trading.get_orders(request)
    assert sorted(o.symbol for o in listed) == ["AAPL", "TSLA"]
    assert {o.side for o in listed} == {OrderSide.SELL}
    assert len(trading.get_orders(GetOrdersRequest(status="all", limit=4))) == 4


def test_list_limit_above_500_is_422(trading):
    with pytest.raises(APIError) as excinfo:
        trading.get_orders(GetOrdersRequest(status="all", limit=501))
    assert excinfo.value.status_code == 422
    assert trading.get_orders(GetOrdersRequest(status="all", limit=500)) == []


def test_after_until_are_exclusive_and_ties_keep_a_stable_order(trading, control):
    """Orders sharing a submitted_at: the paging pitfall TradeOps must handle."""
    t0 = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)
    t1 = t0 + timedelta(seconds=1)
    t2 = t0 + timedelta(seconds=2)
    specs = [("z0", t0), ("a1", t1), ("a2", t1), ("a3", t1), ("b1", t2), ("b2", t2)]
    control.place_orders(
        {
            "symbol": "AAPL",
            "qty": 1,
            "side": "buy",
            "type": "limit",
            "limit_price": "1",
            "time_in_force": "gtc",
            "client_order_id": coid,
            "submitted_at": ts.isoformat(),
        }
        for coid, ts in specs
    )

    def ids(**filters):
        request = GetOrdersRequest(status="all", **filters)
        return [o.client_order_id for o in trading.get_orders(request)]

    assert ids(direction="asc") == ["z0", "a1", "a2", "a3", "b1", "b2"]
    assert ids(direction="desc") == ["b2", "b1", "a3", "a2", "a1", "z0"]
    assert ids() == ids(direction="desc")
    assert ids(after=t0, direction="asc", limit=2) == ["a1", "a2"]
    # Paging with after=<last submitted_at seen> skips a3: bounds are exclusive.
    assert ids(after=t1, direction="asc") == ["b1", "b2"]
    assert ids(until=t2, direction="desc") == ["a3", "a2", "a1", "z0"]
    assert ids(after=t0, until=t2) == ["a3", "a2", "a1"]
    assert ids(until=t0) == []


def test_updated_at_strictly_increases_even_when_time_stands_still(trading, control):
    control.set_clock(now="2024-01-02T15:00:00Z")
    control.set_config(fill_model="manual")
    order = trading.submit_order(market(qty=3, client_order_id="frozen"))
    stamps = [order.updated_at]
    for _ in range(3):
        control.fill("frozen", qty=1)
        stamps.append(trading.get_order_by_client_id("frozen").updated_at)
    assert stamps == sorted(set(stamps))
    assert order.submitted_at == datetime(2024, 1, 2, 15, 0, tzinfo=UTC)
    assert stamps[-1] - stamps[0] == timedelta(microseconds=3)


def test_updated_at_never_repeats_across_orders_after_a_future_submitted_at(control):
    control.set_clock(now="2024-01-02T15:00:00Z")
    control.set_config(fill_model="manual")
    future = "2024-01-02T16:00:00Z"
    first, second = (
        control.place_order("AAPL", 2, "buy", client_order_id=name, submitted_at=future)
        for name in ("future-1", "future-2")
    )
    fills = [control.fill(ref, qty=1) for ref in ("future-1", "future-2", "future-1")]
    stamps = [first["updated_at"], second["updated_at"], *(f["updated_at"] for f in fills)]
    assert stamps == sorted(set(stamps))  # same-format ISO strings sort chronologically
    assert first["submitted_at"] == second["submitted_at"] == "2024-01-02T16:00:00.000000Z"


def test_orphan_order_from_control_api_is_visible_to_the_client(trading, control):
    orphan = control.place_order("MSFT", 5, "sell", "limit", "gtc", limit_price="999")
    listed = trading.get_orders()
    assert [str(o.id) for o in listed] == [orphan["id"]]
    assert control.state()["orders"][0]["origin"] == "control"


def test_control_reads_build_only_what_they_answer(broker, control, monkeypatch):
    control.set_symbol("THIN", adv=20_000)
    control.place_order("MSFT", 5, "sell", "limit", "gtc", limit_price="999")
    built = []
    for owner, name in ((Order, "to_json"), (Portfolio, "account_json")):
        original = getattr(owner, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            built.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, name, spy)  # the broker thread runs in this process
    assert set(control.prices()) == {"MSFT", "THIN"}
    symbols = requests.get(f"{broker.url}/_paper/symbols", timeout=5).json()
    assert symbols["THIN"]["adv"] == 20_000
    assert built == []  # neither orders nor the account for a price or symbol lookup
    state = control.state(include_orders=False)
    assert (state["orders"], state["order_count"]) == (None, 1)
    assert built == ["account_json"]  # thousands of orders are not rendered to be dropped


def test_control_api_does_not_pollute_the_request_log(trading, control):
    trading.get_account()
    control.state()
    log = control.requests()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [("GET", "/v2/account", 200)]
    control.clear_requests()
    assert control.requests() == []


def test_unknown_paths_and_methods_are_json_errors_without_redirects(trading, control):
    for path in ("/orders/", "/nothing", "/stocks/nothing"):
        with pytest.raises(APIError) as excinfo:
            trading.get(path)
        assert (excinfo.value.status_code, excinfo.value.code) == (404, 40410000)
    with pytest.raises(APIError) as excinfo:
        trading.put("/orders", {})
    assert excinfo.value.status_code == 405
    with pytest.raises(PaperControlError) as excinfo:
        control._call("GET", "reset")
    assert excinfo.value.status == 405


def test_replace_order_links_old_and_new(trading, control):
    control.set_price("AAPL", "100")
    old = trading.submit_order(limit(90, tif="gtc", client_order_id="r-old"))
    new = trading.replace_order_by_id(
        old.id, ReplaceOrderRequest(qty=5, limit_price=91, client_order_id="r-new")
    )
    assert (new.replaces, new.qty, new.limit_price, new.status) == (
        old.id,
        "5",
        "91",
        OrderStatus.NEW,
    )
    replaced = trading.get_order_by_id(old.id)
    assert (replaced.status, replaced.replaced_by) == (OrderStatus.REPLACED, new.id)
    assert replaced.replaced_at is not None
    assert [o.id for o in trading.get_orders()] == [new.id]
    with pytest.raises(APIError) as excinfo:
        trading.replace_order_by_id(old.id, ReplaceOrderRequest(qty=4))
    assert (excinfo.value.status_code, excinfo.value.message) == (
        422,
        "order is not replaceable",
    )
    control.set_price("AAPL", "91")
    assert trading.get_order_by_id(new.id).status == OrderStatus.FILLED
