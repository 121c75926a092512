"""The asset universe through the real alpaca-py ``TradingClient``: ``get_all_assets`` and
``get_asset`` parse what the broker serves, orders for unlisted, inactive or halted assets and
short sales of hard-to-borrow ones are refused like Alpaca refuses them, and the control API
adds, halts and restricts assets (kept across a restart with a state file)."""

from __future__ import annotations

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import AssetClass, AssetExchange, AssetStatus
from alpaca.trading.requests import GetAssetsRequest, LimitOrderRequest, MarketOrderRequest

from paperbroker.assets import DEFAULT_UNIVERSE
from paperbroker.control import PaperControl, PaperControlError
from paperbroker.testing import start_test_server

from .helpers import KEY, SECRET, fast


def market(symbol: str, qty: int = 1, side: str = "buy") -> MarketOrderRequest:
    return MarketOrderRequest(symbol=symbol, qty=qty, side=side, time_in_force="day")


def refusal(trading: TradingClient, request: MarketOrderRequest) -> tuple[int, str]:
    with pytest.raises(APIError) as excinfo:
        trading.submit_order(request)
    return excinfo.value.status_code, excinfo.value.message


def test_the_universe_parses_as_alpaca_py_assets(
    trading: TradingClient, control: PaperControl
) -> None:
    control.set_prices({"THIN": "10"})  # a priced symbol is listed
    control.set_asset("OLDCO", status="inactive", tradable=False)
    assets = trading.get_all_assets(GetAssetsRequest(asset_class=AssetClass.US_EQUITY))
    symbols = {a.symbol for a in assets}
    assert symbols == {*DEFAULT_UNIVERSE, "THIN", "OLDCO"}
    aapl = next(a for a in assets if a.symbol == "AAPL")
    assert (aapl.status, aapl.exchange, aapl.tradable, aapl.shortable) == (
        AssetStatus.ACTIVE,
        AssetExchange.NASDAQ,
        True,
        True,
    )
    active = trading.get_all_assets(GetAssetsRequest(status=AssetStatus.ACTIVE))
    assert "OLDCO" not in {a.symbol for a in active}
    assert trading.get_all_assets(GetAssetsRequest(asset_class=AssetClass.CRYPTO)) == []
    assert trading.get_asset("AAPL").id == aapl.id
    assert trading.get_asset(aapl.id).symbol == "AAPL"  # by asset id too
    with pytest.raises(APIError) as excinfo:
        trading.get_asset("ZZZZ")
    assert (excinfo.value.status_code, excinfo.value.message) == (404, "asset not found")


def test_orders_are_refused_for_unlisted_inactive_and_halted_assets(
    trading: TradingClient, control: PaperControl
) -> None:
    assert refusal(trading, market("ZZZZ")) == (422, 'asset "ZZZZ" not found')
    control.set_asset("OLDCO", status="inactive")
    assert refusal(trading, market("OLDCO")) == (422, "asset OLDCO is not active")
    halted = control.set_asset("AAPL", tradable=False)
    assert halted["tradable"] is False
    assert refusal(trading, market("AAPL")) == (422, "asset AAPL is not tradable")
    control.set_asset("AAPL", tradable=True)  # the halt is lifted
    assert trading.submit_order(market("AAPL")).symbol == "AAPL"
    control.set_asset("ZZZZ")  # listed from now on
    assert trading.submit_order(market("ZZZZ")).symbol == "ZZZZ"


def test_a_short_sale_needs_a_shortable_easy_to_borrow_asset(
    trading: TradingClient, control: PaperControl
) -> None:
    control.set_prices({"MSFT": "100"})
    trading.submit_order(market("MSFT", qty=10))
    control.set_asset("MSFT", shortable=False)
    resting = LimitOrderRequest(
        symbol="MSFT", qty=6, side="sell", time_in_force="gtc", limit_price=200
    )
    trading.submit_order(resting)  # closes part of the long: fine
    # 6 of the 10 shares are claimed by the resting sell: 5 more would go short
    assert refusal(trading, market("MSFT", qty=5, side="sell")) == (
        422,
        "asset MSFT cannot be sold short",
    )
    assert trading.submit_order(market("MSFT", qty=4, side="sell")).qty == "4"
    control.set_asset("MSFT", shortable=True, easy_to_borrow=False)
    assert refusal(trading, market("MSFT", qty=1, side="sell"))[0] == 422
    control.set_asset("MSFT", easy_to_borrow=True)
    assert trading.submit_order(market("MSFT", qty=1, side="sell")).side == "sell"


def test_asset_control_validates_all_or_nothing(control: PaperControl) -> None:
    with pytest.raises(PaperControlError) as excinfo:
        control._call("POST", "assets", {"NEWCO": {}, "AAPL": {"tradable": "no"}})
    assert excinfo.value.status == 422
    assert "NEWCO" not in control.assets()  # nothing was applied
    with pytest.raises(PaperControlError):
        control.set_asset("AAPL", halted=True)
    with pytest.raises(PaperControlError):
        control.set_asset("AAPL", status="delisted")
    assert control.assets()["AAPL"]["tradable"] is True


def test_asset_changes_survive_a_restart_and_reset_restores_the_universe(tmp_path) -> None:
    state_file = tmp_path / "broker.json"
    server = start_test_server(state_file=state_file)
    try:
        PaperControl(server.url).set_asset("AAPL", tradable=False)
    finally:
        server.stop()
    restarted = start_test_server(state_file=state_file)
    try:
        trading = fast(TradingClient(KEY, SECRET, url_override=restarted.url))
        assert trading.get_asset("AAPL").tradable is False
        control = PaperControl(restarted.url)
        control.reset()
        assert trading.get_asset("AAPL").tradable is True
    finally:
        restarted.stop()
