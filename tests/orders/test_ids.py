"""Deterministic client_order_ids."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest

from orders.ids import client_order_id_for, plan_key_for, slice_client_order_id

BASE = {
    "symbol": "AAPL",
    "side": "buy",
    "qty": 10,
    "order_type": "limit",
    "time_in_force": "day",
    "limit_price": Decimal("150"),
    "stop_price": None,
    "strategy_id": "alpha",
    "trade_date": date(2026, 11, 23),
}


def test_same_request_same_day_gives_the_same_24_hex_id() -> None:
    first = client_order_id_for(**BASE)
    assert first == client_order_id_for(**BASE)
    assert re.fullmatch(r"[0-9a-f]{24}", first)


def test_price_representation_does_not_matter() -> None:
    assert client_order_id_for(**BASE) == client_order_id_for(
        **{**BASE, "limit_price": Decimal("150.0000")}
    )
    assert client_order_id_for(**BASE) == client_order_id_for(**{**BASE, "symbol": "aapl"})


@pytest.mark.parametrize(
    "change",
    [
        {"symbol": "MSFT"},
        {"side": "sell"},
        {"qty": 11},
        {"order_type": "stop_limit"},
        {"time_in_force": "gtc"},
        {"limit_price": Decimal("150.01")},
        {"stop_price": Decimal("149")},
        {"strategy_id": "beta"},
        {"trade_date": date(2026, 11, 24)},
    ],
)
def test_every_field_changes_the_id(change: dict) -> None:
    assert client_order_id_for(**BASE) != client_order_id_for(**{**BASE, **change})


def test_distinct_sub_penny_prices_stay_distinct() -> None:
    low = {**BASE, "limit_price": Decimal("0.5012")}
    assert client_order_id_for(**low) != client_order_id_for(
        **{**low, "limit_price": Decimal("0.5013")}
    )


def test_slice_ids_depend_only_on_plan_key_and_number() -> None:
    key = plan_key_for(symbol="AAPL", qty=100, day="2026-11-23")
    assert key == plan_key_for(day="2026-11-23", qty=100, symbol="AAPL")
    ids = {slice_client_order_id(plan_key=key, slice_num=n) for n in range(50)}
    assert len(ids) == 50
    assert slice_client_order_id(plan_key=key, slice_num=3) == slice_client_order_id(
        plan_key=key, slice_num=3
    )
