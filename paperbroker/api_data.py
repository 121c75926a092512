"""``/v2/stocks`` Market Data routes: historical bars (paged) and latest quotes/trades."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from paperbroker import marketdata
from paperbroker.models import CODE_BAD_REQUEST, ApiError
from paperbroker.orderspec import validate_symbol
from paperbroker.timeutil import et_date, iso_z, midnight_et, parse_timestamp
from paperbroker.web import Request, Response, route

if TYPE_CHECKING:
    from paperbroker.asgi import PaperBrokerApp

FEEDS = ("iex", "sip", "delayed_sip", "otc", "boats", "overnight")
MAX_BARS_LIMIT = 10_000
DEFAULT_BARS_LIMIT = 1_000


def bad_request(message: str) -> ApiError:
    return ApiError(400, CODE_BAD_REQUEST, message)


def bars(app: PaperBrokerApp, request: Request) -> Response:
    """Bars sorted by symbol, then time; ``limit`` counts bars across symbols per page."""
    query = request.query
    symbols = _symbols(request)
    _feed(request)
    try:
        timeframe = marketdata.parse_timeframe(query.get("timeframe", ""))
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    now = app.engine.now()
    start = _time(request, "start") or midnight_et(et_date(now))
    end = min(_time(request, "end") or now, now)
    limit = _bars_limit(query.get("limit"))
    descending = (query.get("sort") or "asc") == "desc"
    if query.get("sort") not in (None, "", "asc", "desc"):
        raise bad_request(f"invalid sort: {query['sort']}")
    cursor = None
    if query.get("page_token"):
        try:
            cursor = marketdata.decode_page_token(query["page_token"])
        except ValueError as exc:
            raise bad_request(str(exc)) from None
    stream = _bar_stream(app, symbols, timeframe, start, end, now, descending, cursor)
    result: dict[str, list[dict[str, Any]]] = {}
    next_token = None
    for count, (symbol, moment) in enumerate(stream):
        if count == limit:
            next_token = marketdata.encode_page_token(symbol, moment)
            break
        result.setdefault(symbol, []).append(_make_bar(app, symbol, timeframe, moment))
    return Response(200, {"bars": result, "next_page_token": next_token})


def _bar_stream(
    app: PaperBrokerApp,
    symbols: list[str],
    timeframe: marketdata.TimeFrame,
    start: datetime,
    end: datetime,
    now: datetime,
    descending: bool,
    cursor: tuple[str, datetime] | None,
) -> Iterator[tuple[str, datetime]]:
    for symbol in symbols:
        low, high = start, end
        listed = app.engine.symbol_listed(symbol)
        if listed is not None:  # a new listing has no history before its first day
            low = max(low, midnight_et(listed))
        if cursor is not None:
            if symbol < cursor[0]:
                continue
            if symbol == cursor[0]:  # a token narrows the requested range, never widens it
                if descending:
                    high = min(cursor[1], end)
                else:
                    low = max(cursor[1], start)
        for moment in marketdata.bar_times(timeframe, low, high, descending=descending):
            if marketdata.bar_complete(timeframe, moment, now):
                yield symbol, moment
            elif not descending:
                break  # later bars are unfinished too


def _make_bar(
    app: PaperBrokerApp, symbol: str, timeframe: marketdata.TimeFrame, moment: datetime
) -> dict[str, Any]:
    ref = marketdata.reference_price(symbol)
    adv = app.engine.symbol_adv(symbol)
    if timeframe.unit == "Day":
        return marketdata.daily_bar(symbol, et_date(moment), ref, adv)
    return marketdata.intraday_bar(symbol, moment, timeframe.minutes, ref, adv)


def latest_quotes(app: PaperBrokerApp, request: Request) -> Response:
    symbols = _symbols(request)
    _feed(request)
    quotes = {}
    for symbol in symbols:
        quote = app.engine.quote(symbol)
        quotes[symbol] = quote | {"t": iso_z(quote["t"])}
    return Response(200, {"quotes": quotes})


def latest_trades(app: PaperBrokerApp, request: Request) -> Response:
    symbols = _symbols(request)
    _feed(request)
    trades = {}
    for symbol in symbols:
        price, moment = app.engine.latest_trade(symbol)
        trades[symbol] = {
            "t": iso_z(moment),
            "x": "V",
            "p": float(price),
            "s": 100,
            "c": ["@"],
            "i": 1,
            "z": "C",
        }
    return Response(200, {"trades": trades})


def _symbols(request: Request) -> list[str]:
    raw = request.query.get("symbols") or ""
    names = [name.strip() for name in raw.split(",") if name.strip()]
    if not names:
        raise bad_request("missing symbols")
    valid = set()
    for name in names:
        try:
            valid.add(validate_symbol(name))
        except ApiError:
            continue  # unknown symbols are simply absent from the answer, as with Alpaca
    return sorted(valid)


def _feed(request: Request) -> None:
    feed = request.query.get("feed")
    if feed not in (None, "", *FEEDS):
        raise bad_request(f"invalid feed: {feed}")


def _time(request: Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return parse_timestamp(raw.replace(" ", "+"))
    except ValueError:
        raise bad_request(f"invalid {name}: {raw}") from None


def _bars_limit(raw: str | None) -> int:
    if not raw:
        return DEFAULT_BARS_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise bad_request(f"invalid limit: {raw}") from None
    if not 1 <= limit <= MAX_BARS_LIMIT:
        raise bad_request(f"limit must be between 1 and {MAX_BARS_LIMIT}")
    return limit


ROUTES = [
    route("GET", "/v2/stocks/bars", bars),
    route("GET", "/v2/stocks/quotes/latest", latest_quotes),
    route("GET", "/v2/stocks/trades/latest", latest_trades),
]
