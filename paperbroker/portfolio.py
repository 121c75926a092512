"""Cash, positions and the account view derived from them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from paperbroker.models import (
    CODE_FORBIDDEN,
    ApiError,
    Position,
    dstr,
    invalid,
    to_decimal,
    to_whole,
)
from paperbroker.timeutil import iso_z

PriceOf = Callable[[str], Decimal]


class Portfolio:
    def __init__(self, cash: Decimal) -> None:
        self.cash = cash
        self.positions: dict[str, Position] = {}

    def qty(self, symbol: str) -> int:
        position = self.positions.get(symbol)
        return position.qty if position else 0

    def apply_fill(self, symbol: str, signed_qty: int, price: Decimal) -> int:
        """Book a fill; returns the position quantity afterwards (negative = short)."""
        position = self.positions.get(symbol) or Position(symbol, 0, Decimal(0))
        position.apply_fill(signed_qty, price)
        if position.qty:
            self.positions[symbol] = position
        else:
            self.positions.pop(symbol, None)
        self.cash -= price * signed_qty
        return position.qty

    def market_values(self, price_of: PriceOf) -> tuple[Decimal, Decimal]:
        """(long market value, short market value); the short value is negative."""
        long_value = short_value = Decimal(0)
        for symbol, position in self.positions.items():
            value = price_of(symbol) * position.qty
            if position.qty > 0:
                long_value += value
            else:
                short_value += value
        return long_value, short_value

    def buying_power(self, price_of: PriceOf, reserved: Decimal) -> Decimal:
        """Cash-like and unlevered: a short ties up twice its value (the proceeds sit in cash,
        plus the same again as margin); open orders hold what they could spend."""
        _, short_value = self.market_values(price_of)
        return max(Decimal(0), self.cash + 2 * short_value - reserved)

    def account_json(
        self,
        *,
        account_id: str,
        created_at: datetime,
        initial_cash: Decimal,
        price_of: PriceOf,
        reserved: Decimal,
    ) -> dict[str, Any]:
        """``GET /v2/account``; money as strings (alpaca-py's TradeAccount requires it)."""
        long_value, short_value = self.market_values(price_of)
        equity = self.cash + long_value + short_value
        buying_power = dstr(self.buying_power(price_of, reserved))
        gross = long_value - short_value
        return {
            "id": account_id,
            "account_number": "PA0PAPERBRKR",
            "status": "ACTIVE",
            "crypto_status": "INACTIVE",
            "currency": "USD",
            "buying_power": buying_power,
            "regt_buying_power": buying_power,
            "daytrading_buying_power": "0",
            "effective_buying_power": buying_power,
            "non_marginable_buying_power": buying_power,
            "options_buying_power": buying_power,
            "bod_dtbp": "0",
            "cash": dstr(self.cash),
            "accrued_fees": "0",
            "pending_transfer_in": "0",
            "pending_transfer_out": "0",
            "portfolio_value": dstr(equity),
            "pattern_day_trader": False,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "created_at": iso_z(created_at),
            "trade_suspended_by_user": False,
            "multiplier": "1",
            "shorting_enabled": True,
            "equity": dstr(equity),
            "last_equity": dstr(initial_cash),
            "long_market_value": dstr(long_value),
            "short_market_value": dstr(short_value),
            "position_market_value": dstr(gross),
            "initial_margin": dstr(gross),
            "maintenance_margin": dstr(gross * Decimal("0.3")),
            "last_maintenance_margin": "0",
            "sma": "0",
            "daytrade_count": 0,
            "options_approved_level": 0,
            "options_trading_level": 0,
        }

    def snapshot(self) -> dict[str, Any]:
        return {
            "cash": str(self.cash),
            "positions": [position.to_state() for position in self.positions.values()],
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        self.cash = Decimal(data["cash"])
        self.positions = {}
        for raw in data["positions"]:
            position = Position.from_state(raw)
            self.positions[position.symbol] = position


def liquidation_qty(
    position: Position, held: int, *, qty: str | None, percentage: str | None
) -> int:
    """Shares a ``DELETE /v2/positions/{symbol}`` closes: all, ``qty``, or ``percentage``
    rounded down to whole shares; never more than is not held by open closing orders."""
    if qty is not None and percentage is not None:
        raise invalid("only one of qty or percentage may be given")
    size = abs(position.qty)
    if qty is not None:
        requested = to_whole(qty, "qty")
    elif percentage is not None:
        share = to_decimal(percentage, "percentage")
        if not 0 < share <= 100:
            raise invalid("percentage must be in (0, 100]")
        requested = int(size * share / 100)
    else:
        requested = size
    if requested <= 0:
        raise invalid("qty must be > 0")
    available = size - held
    if requested > available:
        raise ApiError(
            403,
            CODE_FORBIDDEN,
            f"insufficient qty available for order (requested: {requested}, "
            f"available: {available})",
            available=str(available),
            existing_qty=str(size),
            held_for_orders=str(held),
            symbol=position.symbol,
        )
    return requested
