"""What stream_quotes watches: --symbols, QUOTE_SYMBOLS, the symbols in play (open orders,
positions, unfinished plans) and the signal universe; malformed entries are ignored."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from marketdata.selectors import quote_universe
from orders.models import Position
from tests.helpers import place
from tests.orders.twap_support import make_plan

pytestmark = pytest.mark.django_db


def test_the_universe_joins_every_source_and_drops_malformed_entries(
    paper: Any, trader: Any, settings: Any
) -> None:
    settings.QUOTE_SYMBOLS = ["msft", "12AB"]
    settings.SIGNAL_UNIVERSE = ["NVDA", "\u00df"]
    assert place(trader, symbol="TSLA", type="limit", limit_price="150.00").status_code == 201
    assert place(trader, symbol="AMD", qty=3).json()["status"] == "filled"  # a position
    make_plan(
        start=timezone.now() + timedelta(minutes=5), qty=2, interval_seconds=30, symbol="META"
    )
    Position.objects.create(symbol="FLAT", qty=0)
    assert quote_universe(extra=["brk.b"]) == ["AMD", "BRK.B", "META", "MSFT", "NVDA", "TSLA"]


def test_finished_orders_and_flat_positions_leave_the_universe(
    paper: Any, trader: Any, settings: Any
) -> None:
    settings.QUOTE_SYMBOLS = []
    settings.SIGNAL_UNIVERSE = []
    resting = place(trader, symbol="TSLA", type="limit", limit_price="150.00").json()
    assert quote_universe() == ["TSLA"]
    trader.post(f"/api/v1/orders/{resting['client_order_id']}/cancel", {}, format="json")
    assert quote_universe() == []
