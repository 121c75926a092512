"""Fixtures: one paper broker per test module on a free port, reset before every test, and the
REAL alpaca-py clients pointed at it (no mocks)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.trading.client import TradingClient

from paperbroker.control import PaperControl
from paperbroker.server import PaperBrokerServer
from paperbroker.testing import start_test_server

from .helpers import KEY, SECRET, fast


@pytest.fixture(scope="module")
def broker() -> Iterator[PaperBrokerServer]:
    server = start_test_server()
    yield server
    server.stop()


@pytest.fixture
def control(broker: PaperBrokerServer) -> PaperControl:
    control = PaperControl(broker.url)
    control.reset()
    return control


@pytest.fixture
def trading(broker: PaperBrokerServer, control: PaperControl) -> TradingClient:
    return fast(TradingClient(KEY, SECRET, url_override=broker.url))


@pytest.fixture
def market_data(broker: PaperBrokerServer, control: PaperControl) -> StockHistoricalDataClient:
    return fast(StockHistoricalDataClient(KEY, SECRET, url_override=broker.url))
