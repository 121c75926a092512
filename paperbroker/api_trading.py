"""``/v2`` Trading API routes (orders, positions, account, clock, calendar, assets)."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from paperbroker.models import CODE_BAD_REQUEST, ApiError, invalid
from paperbroker.timeutil import parse_timestamp
from paperbroker.web import Request, Response, query_bool, route

if TYPE_CHECKING:
    from paperbroker.asgi import PaperBrokerApp

MAX_ORDER_LIMIT = 500


def account(app: PaperBrokerApp, request: Request) -> Response:
    return Response(200, app.engine.account_json())


def clock(app: PaperBrokerApp, request: Request) -> Response:
    return Response(200, app.engine.clock_json())


def calendar(app: PaperBrokerApp, request: Request) -> Response:
    """Like Alpaca: without bounds, every market day 1970-2029."""
    start = _date_param(request, "start") or date(1970, 1, 1)
    end = _date_param(request, "end") or date(2029, 12, 31)
    return Response(200, app.engine.calendar(start, end))


def asset(app: PaperBrokerApp, request: Request, symbol: str) -> Response:
    """``GET /v2/assets/{symbol or asset id}``; 404 ``asset not found`` like Alpaca."""
    return Response(200, app.engine.asset(symbol).to_json())


def assets_list(app: PaperBrokerApp, request: Request) -> Response:
    """``GET /v2/assets?status=&asset_class=&exchange=&attributes=`` (attributes: accepted,
    no paper asset has any)."""
    status = request.query.get("status") or None
    if status not in (None, "active", "inactive"):
        raise invalid(f"invalid status: {status}")
    assets = app.engine.list_assets(
        status=status,
        asset_class=request.query.get("asset_class") or None,
        exchange=request.query.get("exchange") or None,
    )
    return Response(200, [a.to_json() for a in assets])


def orders_create(app: PaperBrokerApp, request: Request) -> Response:
    return Response(200, app.engine.submit_order(request.json()).to_json())


def orders_list(app: PaperBrokerApp, request: Request) -> Response:
    orders = app.engine.list_orders(**_list_params(request))
    return Response(200, [order.to_json() for order in orders])


def orders_cancel_all(app: PaperBrokerApp, request: Request) -> Response:
    return Response(207, app.engine.cancel_all_orders())


def order_by_client_id(app: PaperBrokerApp, request: Request) -> Response:
    client_order_id = request.query.get("client_order_id")
    if not client_order_id:
        raise invalid("client_order_id is required")
    return Response(200, app.engine.get_order_by_client_id(client_order_id).to_json())


def order_get(app: PaperBrokerApp, request: Request, order_id: str) -> Response:
    query_bool(request, "nested")
    return Response(200, app.engine.get_order(order_id).to_json())


def order_replace(app: PaperBrokerApp, request: Request, order_id: str) -> Response:
    body = request.json()
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    return Response(200, app.engine.replace_order(order_id, body).to_json())


def order_cancel(app: PaperBrokerApp, request: Request, order_id: str) -> Response:
    app.engine.cancel_order(order_id)
    return Response(204)


def positions_list(app: PaperBrokerApp, request: Request) -> Response:
    return Response(200, app.engine.positions_json())


def positions_close_all(app: PaperBrokerApp, request: Request) -> Response:
    cancel = bool(query_bool(request, "cancel_orders"))
    return Response(207, app.engine.close_all_positions(cancel_orders=cancel))


def position_get(app: PaperBrokerApp, request: Request, symbol: str) -> Response:
    return Response(200, app.engine.position_json(symbol))


def position_close(app: PaperBrokerApp, request: Request, symbol: str) -> Response:
    order = app.engine.close_position(
        symbol, qty=request.query.get("qty"), percentage=request.query.get("percentage")
    )
    return Response(200, order.to_json())


def _list_params(request: Request) -> dict[str, Any]:
    query = request.query
    status = query.get("status") or "open"
    if status not in ("open", "closed", "all"):
        raise invalid(f"invalid status: {status}")
    direction = query.get("direction") or "desc"
    if direction not in ("asc", "desc"):
        raise invalid(f"invalid direction: {direction}")
    side = query.get("side") or None
    if side not in (None, "buy", "sell"):
        raise invalid(f"invalid side: {side}")
    query_bool(request, "nested")  # accepted and validated; there are no multi-leg orders
    symbols = {s.strip().upper() for s in (query.get("symbols") or "").split(",") if s.strip()}
    return {
        "status": status,
        "limit": _limit(query.get("limit")),
        "after": _timestamp_param(request, "after"),
        "until": _timestamp_param(request, "until"),
        "direction": direction,
        "symbols": frozenset(symbols) or None,
        "side": side,
    }


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return 50
    try:
        limit = int(raw)
    except ValueError:
        raise invalid(f"invalid limit: {raw}") from None
    if not 1 <= limit <= MAX_ORDER_LIMIT:
        raise invalid(f"limit must be between 1 and {MAX_ORDER_LIMIT}")
    return limit


def _timestamp_param(request: Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        # A "+" typed raw into a URL arrives as a space.
        return parse_timestamp(raw.replace(" ", "+"))
    except ValueError:
        raise ApiError(422, CODE_BAD_REQUEST, f"invalid format for {name}") from None


def _date_param(request: Request, name: str) -> date | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw[:10])
    except ValueError:
        raise ApiError(422, CODE_BAD_REQUEST, f"invalid format for {name}") from None


ROUTES = [
    route("GET", "/v2/account", account),
    route("GET", "/v2/clock", clock),
    route("GET", "/v2/calendar", calendar),
    route("GET", "/v2/assets", assets_list),
    route("GET", "/v2/assets/(?P<symbol>[^/]+)", asset),
    route("POST", "/v2/orders", orders_create),
    route("GET", "/v2/orders", orders_list),
    route("DELETE", "/v2/orders", orders_cancel_all),
    route("GET", "/v2/orders:by_client_order_id", order_by_client_id),
    route("GET", "/v2/orders/(?P<order_id>[^/]+)", order_get),
    route("PATCH", "/v2/orders/(?P<order_id>[^/]+)", order_replace),
    route("DELETE", "/v2/orders/(?P<order_id>[^/]+)", order_cancel),
    route("GET", "/v2/positions", positions_list),
    route("DELETE", "/v2/positions", positions_close_all),
    route("GET", "/v2/positions/(?P<symbol>[^/]+)", position_get),
    route("DELETE", "/v2/positions/(?P<symbol>[^/]+)", position_close),
]
