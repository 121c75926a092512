"""The one seam to the broker. Nothing else in TradeOps imports alpaca-py's clients.

What this module adds on top of alpaca-py (facts: ../shared/reference/alpaca-py.md):
- HTTP timeouts. alpaca-py sets none, so a hung broker would hang a worker forever.
- Error mapping that keeps "ambiguous" apart from "refused":
  ``BrokerUnavailable`` (timeout, connection error, 5xx, 429 after retries, an unreadable body:
  the request may or may not have taken effect, so only a lookup by client_order_id is safe),
  ``BrokerRejected`` (a definitive 4xx), ``DuplicateClientOrderId`` (422 "must be unique": the
  order is already there) and ``BrokerNotFound``.
- Small typed reports with Decimal money and int quantities instead of pydantic models whose
  numeric fields are ``str | float`` depending on what the server sent.
- A complete order listing: Alpaca has no page token, so ``iter_orders`` pages on
  ``submitted_at`` and de-duplicates at page boundaries.
- Listings as JSON through alpaca-py's transport (``RESTClient``, ``TradingClient``'s base:
  same auth, retries, ``APIError``), checked as its models check them (``broker_listing``):
  ``TradingClient`` imports pandas (~0.8 s CPU), too slow for a cold start (bench/).
- A count of HTTP requests actually sent (alpaca-py's internal retries included), for the
  200-requests-per-minute budget, and of every 429 answer (``broker_rate_limited_total``: the
  ones alpaca-py retried by itself too, which no exception ever shows).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

import requests
from django.conf import settings
from pydantic import ValidationError
from requests.adapters import HTTPAdapter

from tradeops import metrics
from tradeops.broker_listing import (
    json_list,
    order_report_from_json,
    orders_paged,
    orders_query,
    position_report_from_json,
)
from tradeops.broker_types import (
    AccountReport,
    AssetReport,
    BarReport,
    BrokerError,
    BrokerListingIncomplete,
    BrokerNotFound,
    BrokerRejected,
    BrokerUnavailable,
    ClockReport,
    DuplicateClientOrderId,
    OrderReport,
    PositionReport,
    QuoteReport,
    SessionReport,
    as_aware,
    asset_report_from_alpaca,
    enum_value,
    order_report_from_alpaca,
    to_decimal,
    to_money,
    to_qty,
)

if TYPE_CHECKING:  # alpaca-py is imported where it is used: it pulls in pandas and numpy
    from alpaca.common.exceptions import APIError
    from alpaca.common.rest import RESTClient
    from alpaca.data.enums import DataFeed
    from alpaca.data.historical.stock import StockHistoricalDataClient
    from alpaca.trading.client import TradingClient


_ALPACA_IMPORT_LOCK = threading.Lock()


def _import_alpaca() -> None:
    """Import every alpaca-py module this seam uses, once per process, under a lock. They are
    imported late (they pull in pandas: see the cold-start benchmark), and alpaca.data's
    modules import each other in a cycle: two web threads importing them at once made one see a
    half-initialised module (ImportError, a 500 on a TWAP plan in the two-node harness)."""
    with _ALPACA_IMPORT_LOCK:
        import alpaca.common.exceptions
        import alpaca.data.enums
        import alpaca.data.historical.stock
        import alpaca.data.requests
        import alpaca.data.timeframe
        import alpaca.trading.client
        import alpaca.trading.enums
        import alpaca.trading.requests  # noqa: F401


__all__ = [
    "AccountReport",
    "AssetReport",
    "BarReport",
    "Broker",
    "BrokerError",
    "BrokerListingIncomplete",
    "BrokerNotFound",
    "BrokerRejected",
    "BrokerUnavailable",
    "ClockReport",
    "DuplicateClientOrderId",
    "OrderReport",
    "PositionReport",
    "QuoteReport",
    "SessionReport",
    "get_broker",
    "get_quote_broker",
    "submit_window_seconds",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
_Client = TypeVar("_Client", bound="RESTClient")
NEW_YORK = ZoneInfo("America/New_York")


# --- transport ---------------------------------------------------------------------------------
class _TimeoutCountingAdapter(HTTPAdapter):
    """Applies a default timeout to every request and counts what is really sent."""

    def __init__(self, timeout: tuple[float, float], counter: Callable[[], None]) -> None:
        super().__init__()
        self._timeout = timeout
        self._counter = counter

    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        self._counter()
        response = super().send(request, **kwargs)
        if response.status_code == 429:
            metrics.BROKER_RATE_LIMITED.inc()
        return response


def _environment_once(session: requests.Session, base_url: str) -> None:
    """Read the proxy and CA-bundle environment once, when the client is built, instead of
    on every request: requests scans every environment variable (and ~/.netrc) per call when
    ``trust_env`` is on, about 1.5 ms of CPU per broker call on the order path. Same proxies
    (HTTP(S)_PROXY, NO_PROXY for this base URL) and the same REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE;
    never a ~/.netrc login (alpaca-py authenticates by its own headers)."""
    session.proxies.update(requests.utils.get_environ_proxies(base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False


def _api_error_fields(exc: APIError) -> tuple[int | None, int | None, str]:
    """APIError.code/.message raise on non-JSON bodies; read the body ourselves."""
    status = exc.status_code
    text = str(exc)
    try:
        body = json.loads(text)
    except ValueError:
        return status, None, text[:500]
    if not isinstance(body, dict):
        return status, None, text[:500]
    code = body.get("code")
    return status, code if isinstance(code, int) else None, str(body.get("message", text))[:500]


def _map_errors(call: Callable[[], T], what: str) -> T:
    from alpaca.common.exceptions import APIError

    metrics.BROKER_REQUESTS.labels(what).inc()
    try:
        return call()
    except APIError as exc:
        status, code, message = _api_error_fields(exc)
        if status is None or status >= 500 or status in (408, 429):
            metrics.BROKER_ERRORS.labels("unavailable").inc()
            raise BrokerUnavailable(
                f"{what}: broker answered {status}: {message}", status_code=status, code=code
            ) from exc
        if status == 404:
            raise BrokerNotFound(f"{what}: {message}", status_code=status, code=code) from exc
        if status == 422 and "client_order_id must be unique" in message.lower():
            metrics.BROKER_ERRORS.labels("duplicate_client_order_id").inc()
            raise DuplicateClientOrderId(message, status_code=status, code=code) from exc
        metrics.BROKER_ERRORS.labels("rejected").inc()
        raise BrokerRejected(message, status_code=status, code=code) from exc
    except requests.RequestException as exc:
        metrics.BROKER_ERRORS.labels("unavailable").inc()
        raise BrokerUnavailable(f"{what}: {exc.__class__.__name__}: {exc}") from exc
    except (ValidationError, ValueError, TypeError, KeyError) as exc:
        # An unreadable answer is not an answer: whatever happened at the broker is unknown.
        metrics.BROKER_ERRORS.labels("unreadable").inc()
        raise BrokerUnavailable(f"{what}: unreadable broker response: {exc}") from exc


class Broker:
    """alpaca-py clients configured for TradeOps. One instance per thread (see get_broker)."""

    def __init__(
        self,
        *,
        api_key: str,
        secret_key: str,
        paper: bool,
        base_url: str | None,
        data_url: str | None,
        data_feed: str,
        connect_timeout: float,
        read_timeout: float,
        retry_attempts: int,
        retry_wait_seconds: float,
    ) -> None:
        self.requests_sent = 0
        self._count_lock = threading.Lock()
        self._timeouts = (connect_timeout, read_timeout)
        self._retry = (retry_attempts, retry_wait_seconds)
        self._credentials = (api_key, secret_key)
        self._paper = paper
        self._base_url = base_url or None
        self._data_url = data_url or None
        self._data_feed = data_feed
        self._trading: TradingClient | None = None
        self._json: RESTClient | None = None
        self._data: StockHistoricalDataClient | None = None

    def _configured(self, client: _Client) -> _Client:
        adapter = _TimeoutCountingAdapter(self._timeouts, self._count)
        client._session.mount("http://", adapter)
        client._session.mount("https://", adapter)
        _environment_once(client._session, str(client._base_url))
        # alpaca-py's retry knobs are not constructor arguments (reference §1.4).
        client._retry, client._retry_wait = self._retry
        return client

    @property
    def trading(self) -> TradingClient:
        """alpaca-py's trading client, built on first use (it imports pandas: module doc)."""
        if self._trading is None:
            _import_alpaca()
            from alpaca.trading.client import TradingClient

            self._trading = self._configured(
                TradingClient(*self._credentials, paper=self._paper, url_override=self._base_url)
            )
        return self._trading

    @property
    def _rest(self) -> RESTClient:
        """alpaca-py's transport to the trading API, answering JSON (module docstring)."""
        if self._json is None:
            with _ALPACA_IMPORT_LOCK:  # as _import_alpaca, but alpaca.common only: no pandas
                from alpaca.common.enums import BaseURL
                from alpaca.common.rest import RESTClient

            url = self._base_url or (BaseURL.TRADING_PAPER if self._paper else BaseURL.TRADING_LIVE)
            client = RESTClient(url, *self._credentials, sandbox=self._paper, raw_data=True)
            self._json = self._configured(client)
        return self._json

    def _json_rows(self, path: str, of: Callable[[Any], T], op: str, query: Any = None) -> list[T]:
        """``GET path`` as a JSON array, each row read by ``of``; unreadable: BrokerUnavailable."""

        def rows() -> list[T]:
            return [of(row) for row in json_list(self._rest.get(path, query), op)]

        return _map_errors(rows, op)

    @property
    def data(self) -> StockHistoricalDataClient:
        """The market-data client, built on first use: importing alpaca-py's data models costs
        ~0.5 s of CPU that a process which only trades (the reconciler, the API) never needs."""
        if self._data is None:
            from alpaca.data.historical.stock import StockHistoricalDataClient

            self._data = self._configured(
                StockHistoricalDataClient(*self._credentials, url_override=self._data_url)
            )
        return self._data

    @property
    def data_feed(self) -> DataFeed:
        from alpaca.data.enums import DataFeed

        return DataFeed(self._data_feed)

    def _count(self) -> None:
        with self._count_lock:
            self.requests_sent += 1

    # orders ----------------------------------------------------------------------------------
    def submit_order(
        self,
        *,
        client_order_id: str,
        symbol: str,
        side: str,
        qty: int,
        order_type: str,
        time_in_force: str,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
    ) -> OrderReport:
        from alpaca.trading.enums import OrderSide, TimeInForce
        from alpaca.trading.requests import (
            LimitOrderRequest,
            MarketOrderRequest,
            StopLimitOrderRequest,
            StopOrderRequest,
        )

        common = {
            "symbol": symbol,
            "qty": qty,
            "side": OrderSide(side),
            "time_in_force": TimeInForce(time_in_force),
            "client_order_id": client_order_id,
        }
        lp = float(limit_price) if limit_price is not None else None
        sp = float(stop_price) if stop_price is not None else None
        builders = {
            "market": lambda: MarketOrderRequest(**common),
            "limit": lambda: LimitOrderRequest(**common, limit_price=lp),
            "stop": lambda: StopOrderRequest(**common, stop_price=sp),
            "stop_limit": lambda: StopLimitOrderRequest(**common, limit_price=lp, stop_price=sp),
        }
        request = builders[order_type]()
        order = _map_errors(lambda: self.trading.submit_order(request), "submit_order")
        return order_report_from_alpaca(order)

    def get_order_by_client_id(self, client_order_id: str) -> OrderReport:
        order = _map_errors(
            lambda: self.trading.get_order_by_client_id(client_order_id), "get_order_by_client_id"
        )
        return order_report_from_alpaca(order)

    def get_order(self, broker_order_id: str) -> OrderReport:
        order = _map_errors(lambda: self.trading.get_order_by_id(broker_order_id), "get_order")
        return order_report_from_alpaca(order)

    def cancel_order(self, broker_order_id: str) -> None:
        """A 204 only means the cancel was accepted; the outcome arrives as an order update."""
        _map_errors(lambda: self.trading.cancel_order_by_id(broker_order_id), "cancel_order")

    def list_orders(
        self,
        *,
        status: str = "open",
        after: datetime | None = None,
        until: datetime | None = None,
        direction: str = "asc",
        limit: int = 500,
        symbols: list[str] | None = None,
    ) -> list[OrderReport]:
        """One page (at most ``limit``, Alpaca caps it at 500), read as JSON (module doc)."""
        params = orders_query(status, after, until, direction, limit, symbols)
        return self._json_rows("/orders", order_report_from_json, "get_orders", params)

    def iter_orders(
        self,
        *,
        status: str = "all",
        after: datetime | None = None,
        until: datetime | None = None,
        direction: str = "asc",
        page_size: int = 500,
    ) -> Iterator[list[OrderReport]]:
        """Every order submitted in (after, until), once each, page by page (``orders_paged``)."""

        def page_of(low: datetime | None, high: datetime | None) -> list[OrderReport]:
            return self.list_orders(
                status=status, after=low, until=high, direction=direction, limit=page_size
            )

        return orders_paged(
            page_of, after=after, until=until, ascending=direction == "asc", page_size=page_size
        )

    # positions, account, clock ----------------------------------------------------------------
    def get_positions(self) -> list[PositionReport]:
        """Every open position, read as JSON (module docstring)."""
        return self._json_rows("/positions", position_report_from_json, "get_all_positions")

    def get_position(self, symbol: str) -> PositionReport | None:
        """None when flat: Alpaca answers 404 "position does not exist" for a flat symbol."""
        try:
            position = _map_errors(
                lambda: self.trading.get_open_position(symbol), "get_open_position"
            )
        except BrokerNotFound:
            return None
        return _position_report(position)

    def get_account(self) -> AccountReport:
        acct = _map_errors(self.trading.get_account, "get_account")
        return AccountReport(
            account_number=acct.account_number,
            status=enum_value(acct.status),
            cash=to_decimal(acct.cash) or Decimal(0),
            buying_power=to_decimal(acct.buying_power) or Decimal(0),
            equity=to_decimal(acct.equity) or Decimal(0),
        )

    def get_clock(self) -> ClockReport:
        clock = _map_errors(self.trading.get_clock, "get_clock")
        return ClockReport(
            timestamp=as_aware(clock.timestamp).astimezone(UTC),
            is_open=bool(clock.is_open),
            next_open=as_aware(clock.next_open).astimezone(UTC),
            next_close=as_aware(clock.next_close).astimezone(UTC),
        )

    def get_calendar(self, *, start: date, end: date) -> list[SessionReport]:
        """The exchange's trading days in [start, end] (weekends and holidays are absent)."""
        from alpaca.trading.requests import GetCalendarRequest

        days = _map_errors(
            lambda: self.trading.get_calendar(GetCalendarRequest(start=start, end=end)),
            "get_calendar",
        )
        # alpaca-py builds naive New York wall-clock datetimes from "HH:MM" (reference §3.4).
        return [
            SessionReport(
                date=d.date,
                open=d.open.replace(tzinfo=NEW_YORK).astimezone(UTC),
                close=d.close.replace(tzinfo=NEW_YORK).astimezone(UTC),
            )
            for d in days
        ]

    # assets ---------------------------------------------------------------------------------------
    def list_assets(self) -> list[AssetReport]:
        """Every US equity the broker lists, active or not (an inactive one is then refused
        as such rather than as unknown). Alpaca can list a symbol twice (one tradable, one
        not), so callers key by symbol with care."""
        from alpaca.trading.enums import AssetClass
        from alpaca.trading.requests import GetAssetsRequest

        request = GetAssetsRequest(asset_class=AssetClass.US_EQUITY)
        assets = _map_errors(lambda: self.trading.get_all_assets(request), "get_all_assets")
        return [asset_report_from_alpaca(a) for a in assets]

    def get_asset(self, symbol: str) -> AssetReport:
        """One asset; ``BrokerNotFound`` when the broker does not list it."""
        asset = _map_errors(lambda: self.trading.get_asset(symbol), "get_asset")
        return asset_report_from_alpaca(asset)

    # market data --------------------------------------------------------------------------------
    def get_daily_bars(self, symbol: str, *, start: datetime, end: datetime) -> list[BarReport]:
        return self.get_daily_bars_many([symbol], start=start, end=end).get(symbol, [])

    def get_daily_bars_many(
        self, symbols: Sequence[str], *, start: datetime, end: datetime
    ) -> dict[str, list[BarReport]]:
        """Daily bars of several symbols in one request; alpaca-py follows ``next_page_token``
        until the broker answers null. A symbol without bars is absent from the result."""
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame

        request = StockBarsRequest(
            symbol_or_symbols=list(symbols),
            timeframe=TimeFrame.Day,
            start=start,
            end=end,
            feed=self.data_feed,
        )
        barset = _map_errors(lambda: self.data.get_stock_bars(request), "get_stock_bars")
        return {
            symbol: [
                BarReport(
                    timestamp=as_aware(b.timestamp),
                    open=to_money(b.open) or Decimal(0),
                    high=to_money(b.high) or Decimal(0),
                    low=to_money(b.low) or Decimal(0),
                    close=to_money(b.close) or Decimal(0),
                    volume=int(b.volume),
                    vwap=to_money(b.vwap),
                    trade_count=int(b.trade_count) if b.trade_count is not None else None,
                )
                for b in bars
            ]
            for symbol, bars in barset.data.items()
        }

    def get_latest_quote(self, symbol: str) -> QuoteReport | None:
        from alpaca.data.requests import StockLatestQuoteRequest

        request = StockLatestQuoteRequest(symbol_or_symbols=symbol, feed=self.data_feed)
        quotes = _map_errors(
            lambda: self.data.get_stock_latest_quote(request), "get_stock_latest_quote"
        )
        quote = quotes.get(symbol)
        if quote is None:
            return None
        return QuoteReport(
            symbol=symbol,
            bid_price=to_money(quote.bid_price) or Decimal(0),
            ask_price=to_money(quote.ask_price) or Decimal(0),
            bid_size=int(quote.bid_size or 0),
            ask_size=int(quote.ask_size or 0),
            timestamp=as_aware(quote.timestamp),
        )


def _position_report(position: Any) -> PositionReport:
    qty = to_qty(position.qty)
    if enum_value(position.side) == "short" and qty > 0:
        qty = -qty
    return PositionReport(
        symbol=position.symbol,
        qty=qty,
        avg_entry_price=to_money(position.avg_entry_price) or Decimal(0),
        market_value=to_money(position.market_value),
        current_price=to_money(position.current_price),
    )


def submit_window_seconds() -> float:
    """About the longest a submit can keep its caller waiting: every attempt alpaca-py makes
    (it retries 429/504 by itself) bounded by our connect and read timeouts, plus its sleeps
    in between. (A read timeout bounds each wait for bytes, not the whole answer, so a
    trickling server could exceed it; Alpaca does not trickle.)"""
    attempts = settings.ALPACA_RETRY_ATTEMPTS + 1
    per_attempt = settings.ALPACA_CONNECT_TIMEOUT_SECONDS + settings.ALPACA_HTTP_TIMEOUT_SECONDS
    return (
        attempts * per_attempt + settings.ALPACA_RETRY_ATTEMPTS * settings.ALPACA_RETRY_WAIT_SECONDS
    )


# --- process-wide access ------------------------------------------------------------------------
_local = threading.local()


def _settings_key() -> tuple[Any, ...]:
    return (
        settings.ALPACA_API_KEY,
        settings.ALPACA_SECRET_KEY,
        settings.ALPACA_PAPER,
        settings.ALPACA_BASE_URL,
        settings.ALPACA_DATA_URL,
        settings.ALPACA_DATA_FEED,
        settings.ALPACA_CONNECT_TIMEOUT_SECONDS,
        settings.ALPACA_HTTP_TIMEOUT_SECONDS,
        settings.ALPACA_RETRY_ATTEMPTS,
        settings.ALPACA_RETRY_WAIT_SECONDS,
    )


def _broker_for(key: tuple[Any, ...], **overrides: Any) -> Broker:
    (api_key, secret, paper, base, data, feed, ct, rt, attempts, wait) = key[:10]
    params = {
        "connect_timeout": ct,
        "read_timeout": rt,
        "retry_attempts": attempts,
        "retry_wait_seconds": wait,
    } | overrides
    return Broker(
        api_key=api_key,
        secret_key=secret,
        paper=paper,
        base_url=base,
        data_url=data,
        data_feed=feed,
        **params,
    )


def get_broker() -> Broker:
    """The broker for this thread, rebuilt whenever the broker settings change (tests do that).

    Per thread because a requests.Session is not meant to be shared between threads.
    """
    key = _settings_key()
    cached = getattr(_local, "broker", None)
    if cached is None or _local.key != key:
        cached = _broker_for(key)
        _local.broker, _local.key = cached, key
    return cached


def get_quote_broker(timeout: float) -> Broker:
    """The broker for this thread's latency-bound reads (the quote client's last hop): at most
    ``timeout`` seconds to connect and to read, and no retry of 429/504 (alpaca-py would sleep
    3 s per retry; a quote that late is of no use to the order waiting for it)."""
    key = (*_settings_key(), timeout)
    cached = getattr(_local, "quote_broker", None)
    if cached is None or _local.quote_key != key:
        cached = _broker_for(
            key,
            connect_timeout=min(settings.ALPACA_CONNECT_TIMEOUT_SECONDS, timeout),
            read_timeout=timeout,
            retry_attempts=0,
            retry_wait_seconds=0,
        )
        _local.quote_broker, _local.quote_key = cached, key
    return cached
