"""The price book: current prices, per-symbol volume profiles and the seeded random walk."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from math import exp
from typing import Any

from paperbroker import marketdata
from paperbroker.models import dstr, round_price


class PriceBook:
    """Prices appear lazily: a symbol starts at its last synthetic daily close, so the
    current price continues the bars a client has just downloaded."""

    def __init__(self) -> None:
        self.prices: dict[str, Decimal] = {}
        self.quoted_at: dict[str, datetime] = {}
        self.adv: dict[str, int] = {}
        self.listed: dict[str, date] = {}  # no bars before this day (a new listing)
        self._walkers: dict[str, random.Random] = {}

    def price(self, symbol: str, *, now: datetime, last_close_day: date) -> Decimal:
        current = self.prices.get(symbol)
        if current is None:
            close = marketdata.daily_close(
                symbol, last_close_day, marketdata.reference_price(symbol)
            )
            current = round_price(Decimal(str(close)))
            self.prices[symbol] = current
            self.quoted_at[symbol] = now
        return current

    def set(self, symbol: str, value: Decimal, moment: datetime) -> None:
        self.prices[symbol] = value
        self.quoted_at[symbol] = moment

    def refresh_quotes(self, moment: datetime) -> None:
        """A live market keeps quoting even when the mid does not move."""
        for symbol in self.prices:
            self.quoted_at[symbol] = moment

    def walk_step(self, symbol: str, *, seed: int, tick_no: int, volatility: float) -> Decimal:
        """Next random-walk price; each symbol has its own generator seeded by (seed, symbol)."""
        walker = self._walkers.get(symbol)
        if walker is None:
            walker = random.Random(f"{seed}:{symbol}:{tick_no}")
            self._walkers[symbol] = walker
        step = exp(walker.gauss(0.0, volatility))
        return round_price(self.prices[symbol] * Decimal(str(step)))

    def adv_for(self, symbol: str) -> int:
        return self.adv.get(symbol) or marketdata.default_adv(symbol)

    @staticmethod
    def lastday_price(symbol: str, previous_day: date) -> Decimal:
        close = marketdata.daily_close(symbol, previous_day, marketdata.reference_price(symbol))
        return Decimal(str(close))

    def quote(self, symbol: str) -> dict[str, Any]:
        """Latest quote around the current price, in the wire shape without ``T``/``S``."""
        price = self.prices[symbol]
        moment = self.quoted_at[symbol]
        spread = marketdata.half_spread(price)
        bid_size, ask_size = marketdata.quote_sizes(symbol, moment)
        return {
            "t": moment,
            "ax": "V",
            "ap": float(price + spread),
            "as": ask_size,
            "bx": "V",
            "bp": float(max(price - spread, spread)),
            "bs": bid_size,
            "c": ["R"],
            "z": "C",
        }

    def to_json(self) -> dict[str, str | None]:
        return {symbol: dstr(price) for symbol, price in sorted(self.prices.items())}

    def snapshot(self) -> dict[str, Any]:
        return {
            "prices": {symbol: str(price) for symbol, price in self.prices.items()},
            "adv": dict(self.adv),
            "listed": {symbol: day.isoformat() for symbol, day in self.listed.items()},
        }

    def restore(self, data: Mapping[str, Any], moment: datetime) -> None:
        self.prices = {symbol: Decimal(price) for symbol, price in data["prices"].items()}
        self.quoted_at = dict.fromkeys(self.prices, moment)
        self.adv = {symbol: int(adv) for symbol, adv in data["adv"].items()}
        self.listed = {s: date.fromisoformat(d) for s, d in data.get("listed", {}).items()}
