"""The paper broker's asset universe: what ``GET /v2/assets`` lists and what orders may trade.

Like Alpaca, an order for a symbol that is not listed, or listed but inactive or not tradable,
is refused (422), and a sell that would open or extend a short needs a shortable,
easy-to-borrow asset. The universe is a built-in list of well-known US equities, every symbol
a client gave a price or a profile (``/_paper/prices``, ``/_paper/symbols``), and whatever
``POST /_paper/assets`` adds; the same endpoint halts an asset (``tradable: false``), delists
it (``status: inactive``) or makes it hard to borrow (``shortable: false``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from paperbroker.models import CODE_NOT_FOUND, ApiError, asset_id_for, invalid
from paperbroker.orderspec import validate_symbol

DEFAULT_UNIVERSE = (
    "AAPL",
    "AMD",
    "AMZN",
    "BA",
    "BAC",
    "COST",
    "CSCO",
    "DIA",
    "DIS",
    "GOOG",
    "GOOGL",
    "IBM",
    "INTC",
    "IWM",
    "JNJ",
    "JPM",
    "KO",
    "MA",
    "META",
    "MSFT",
    "NFLX",
    "NVDA",
    "ORCL",
    "PEP",
    "PFE",
    "QQQ",
    "SPY",
    "T",
    "TSLA",
    "UNH",
    "V",
    "WMT",
    "XOM",
)
STATUSES = ("active", "inactive")
FLAGS = ("tradable", "marginable", "shortable", "easy_to_borrow", "fractionable")


@dataclass(frozen=True, slots=True)
class Asset:
    symbol: str
    status: str = "active"
    tradable: bool = True
    marginable: bool = True
    shortable: bool = True
    easy_to_borrow: bool = True
    fractionable: bool = False
    exchange: str = "NASDAQ"
    name: str = ""

    @property
    def id(self) -> str:
        return asset_id_for(self.symbol)

    @property
    def can_open_short(self) -> bool:
        # Alpaca opens short positions only in shortable, easy-to-borrow securities.
        return self.shortable and self.easy_to_borrow

    def to_json(self) -> dict[str, Any]:
        """Alpaca's asset JSON (alpaca-py ``Asset``: ``class`` is its ``asset_class``)."""
        return {
            "id": self.id,
            "class": "us_equity",
            "exchange": self.exchange,
            "symbol": self.symbol,
            "name": self.name or f"{self.symbol} (paper broker)",
            "status": self.status,
            "tradable": self.tradable,
            "marginable": self.marginable,
            "maintenance_margin_requirement": 30,
            "shortable": self.shortable,
            "easy_to_borrow": self.easy_to_borrow,
            "fractionable": self.fractionable,
            "attributes": [],
        }


class AssetBook:
    """Symbol -> asset. Not locked itself: the engine calls it under its own lock."""

    def __init__(self) -> None:
        self.assets: dict[str, Asset] = {s: Asset(s) for s in DEFAULT_UNIVERSE}

    def list_symbols(self, symbols: Iterable[str]) -> None:
        """Symbols a client priced or profiled join the universe (active, tradable)."""
        for symbol in symbols:
            self.assets.setdefault(symbol, Asset(symbol))

    def update(self, raw_symbol: str, changes: Mapping[str, Any]) -> Asset:
        """Add an asset, or change its status, flags, exchange or name."""
        symbol = validate_symbol(raw_symbol)
        if not isinstance(changes, Mapping):
            raise invalid(f"asset {symbol} must be an object")
        known = {f.name for f in fields(Asset)} - {"symbol"}
        unknown = set(changes) - known
        if unknown:
            raise invalid(f"unknown asset keys: {', '.join(sorted(unknown))}")
        for flag in FLAGS:
            if flag in changes and not isinstance(changes[flag], bool):
                raise invalid(f"{flag} must be true or false")
        if "status" in changes and changes["status"] not in STATUSES:
            raise invalid(f"status must be one of {', '.join(STATUSES)}")
        for text in ("exchange", "name"):
            if text in changes and not isinstance(changes[text], str):
                raise invalid(f"{text} must be a string")
        asset = replace(self.assets.get(symbol, Asset(symbol)), **dict(changes))
        self.assets[symbol] = asset
        return asset

    def find(self, symbol_or_id: str) -> Asset:
        """By symbol or asset id; 404 ``asset not found`` otherwise (as Alpaca answers)."""
        asset = self.assets.get(symbol_or_id.upper())
        if asset is None:
            asset = next((a for a in self.assets.values() if a.id == symbol_or_id), None)
        if asset is None:
            raise ApiError(404, CODE_NOT_FOUND, "asset not found")
        return asset

    def query(
        self, *, status: str | None, asset_class: str | None, exchange: str | None
    ) -> list[Asset]:
        if asset_class not in (None, "us_equity"):
            return []  # only US equities trade here
        return [
            a
            for _, a in sorted(self.assets.items())
            if status in (None, a.status) and exchange in (None, a.exchange)
        ]

    def check_order(self, symbol: str, *, opens_short: bool) -> None:
        """Refuse an order Alpaca would refuse for its asset (422, code 42210000)."""
        asset = self.assets.get(symbol)
        if asset is None:
            raise invalid(f'asset "{symbol}" not found')
        if asset.status != "active":
            raise invalid(f"asset {symbol} is not active")
        if not asset.tradable:
            raise invalid(f"asset {symbol} is not tradable")
        if opens_short and not asset.can_open_short:
            raise invalid(f"asset {symbol} cannot be sold short")

    def snapshot(self) -> list[dict[str, Any]]:
        return [asdict(a) for _, a in sorted(self.assets.items())]

    def restore(self, rows: list[dict[str, Any]] | None) -> None:
        """A state file without assets (an older broker's) keeps the default universe."""
        if rows is not None:
            self.assets = {row["symbol"]: Asset(**row) for row in rows}

    def to_json(self) -> dict[str, dict[str, Any]]:
        return {symbol: asset.to_json() for symbol, asset in sorted(self.assets.items())}
