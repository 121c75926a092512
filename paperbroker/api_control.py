"""``/_paper`` control API: what tests, the demo and operator drills use to steer the broker.

No authentication (loopback only), no faults, no rate limit, not in the request log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from paperbroker.models import as_bool, invalid
from paperbroker.timeutil import parse_timestamp
from paperbroker.web import Request, Response, query_bool, route

if TYPE_CHECKING:
    from paperbroker.asgi import PaperBrokerApp


def _object(request: Request) -> dict[str, Any]:
    body = request.json()
    if not isinstance(body, Mapping):
        raise invalid("request body must be a JSON object")
    return dict(body)


def _silent(body: Mapping[str, Any]) -> bool:
    return as_bool(body.get("silent", False), "silent")


def reset(app: PaperBrokerApp, request: Request) -> Response:
    app.engine.reset(_object(request))
    return Response(200, {"ok": True, "config": app.engine.config.to_json()})


def config_get(app: PaperBrokerApp, request: Request) -> Response:
    return Response(200, app.engine.config.to_json())


def config_set(app: PaperBrokerApp, request: Request) -> Response:
    return Response(200, app.engine.update_config(_object(request)).to_json())


def clock_get(app: PaperBrokerApp, request: Request) -> Response:
    return Response(200, app.engine.clock_json())


def clock_set(app: PaperBrokerApp, request: Request) -> Response:
    return Response(200, app.engine.set_clock(_object(request)))


def prices_get(app: PaperBrokerApp, request: Request) -> Response:
    return Response(200, app.engine.prices_json())


def prices_set(app: PaperBrokerApp, request: Request) -> Response:
    return Response(200, app.engine.set_prices(_object(request)))


def symbols_get(app: PaperBrokerApp, request: Request) -> Response:
    return Response(200, app.engine.symbols_json())


def symbols_set(app: PaperBrokerApp, request: Request) -> Response:
    result = {}
    for symbol, profile in _object(request).items():
        if not isinstance(profile, Mapping):
            raise invalid(f"profile for {symbol} must be an object")
        result[symbol.upper()] = app.engine.set_symbol(symbol, profile)
    return Response(200, result)


def assets_get(app: PaperBrokerApp, request: Request) -> Response:
    return Response(200, app.engine.assets_json())


def assets_set(app: PaperBrokerApp, request: Request) -> Response:
    """``{"SYM": {"tradable": false, ...}, ...}``: add, halt, delist or restrict assets."""
    return Response(200, app.engine.set_assets(_object(request)))


def orders_place(app: PaperBrokerApp, request: Request) -> Response:
    """One order, or ``{"orders": [...]}`` in bulk; no buying-power check (the broker, not the
    client, put them there)."""
    body = _object(request)
    if "orders" in body:
        if not isinstance(body["orders"], list):
            raise invalid("orders must be a list")
        orders = app.engine.submit_orders(body["orders"])
        return Response(200, {"orders": [order.to_json() for order in orders]})
    order = app.engine.submit_order(body, origin="control", check_buying_power=False)
    return Response(200, order.to_json())


def order_fill(app: PaperBrokerApp, request: Request, ref: str) -> Response:
    body = _object(request)
    order = app.engine.fill_order(
        ref, qty=body.get("qty"), price=body.get("price"), silent=_silent(body)
    )
    return Response(200, order.to_json())


def order_cancel(app: PaperBrokerApp, request: Request, ref: str) -> Response:
    order = app.engine.cancel_order(ref, silent=_silent(_object(request)), by_client=True)
    return Response(200, order.to_json())


def order_reject(app: PaperBrokerApp, request: Request, ref: str) -> Response:
    order = app.engine.reject_order(ref, silent=_silent(_object(request)))
    return Response(200, order.to_json())


def faults_get(app: PaperBrokerApp, request: Request) -> Response:
    return Response(200, {"faults": app.engine.faults.to_json()})


def faults_add(app: PaperBrokerApp, request: Request) -> Response:
    body = _object(request)
    specs = body["faults"] if isinstance(body.get("faults"), list) else [body]
    added = [app.engine.faults.add(dict(spec)).to_json() for spec in specs]
    return Response(200, {"added": added, "faults": app.engine.faults.to_json()})


def faults_clear(app: PaperBrokerApp, request: Request) -> Response:
    app.engine.faults.clear()
    app.release_holds()
    return Response(200, {"faults": []})


def state(app: PaperBrokerApp, request: Request) -> Response:
    include_orders = query_bool(request, "orders") is not False
    snapshot = app.engine.state_json(include_orders=include_orders)
    return Response(200, snapshot | {"streams": app.hub.stats()})


def requests_get(app: PaperBrokerApp, request: Request) -> Response:
    """The ``/v2`` request log, optionally filtered by method, path or client_order_id."""
    wanted = {k: v for k, v in request.query.items() if k in ("method", "path", "client_order_id")}
    entries = [
        entry
        for entry in list(app.engine.request_log)
        if all(str(entry.get(key)) == value for key, value in wanted.items())
    ]
    return Response(200, {"requests": entries})


def requests_clear(app: PaperBrokerApp, request: Request) -> Response:
    app.engine.request_log.clear()
    return Response(200, {"requests": []})


def tick(app: PaperBrokerApp, request: Request) -> Response:
    count = _object(request).get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 10_000:
        raise invalid("count must be an integer between 1 and 10000")
    return Response(200, {"tick": app.tick(count)})


def streams_get(app: PaperBrokerApp, request: Request) -> Response:
    return Response(200, app.hub.stats())


def streams_disconnect(app: PaperBrokerApp, request: Request) -> Response:
    return Response(200, {"closed": app.hub.disconnect_all()})


def streams_inject(app: PaperBrokerApp, request: Request) -> Response:
    """``{"messages": [...]}`` pushed raw to the market data clients; a ``t`` that reads as a
    timestamp is sent as one (msgpack Timestamp), anything else exactly as given."""
    messages = _object(request).get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages must be a non-empty list")
    return Response(200, {"clients": app.hub.inject_data([_stamped(m) for m in messages])})


def _stamped(message: Any) -> Any:
    if not isinstance(message, dict) or not isinstance(message.get("t"), str):
        return message
    try:
        return message | {"t": parse_timestamp(message["t"])}
    except ValueError:
        return message


ROUTES = [
    route("POST", "/_paper/reset", reset),
    route("GET", "/_paper/config", config_get),
    route("POST", "/_paper/config", config_set),
    route("GET", "/_paper/clock", clock_get),
    route("POST", "/_paper/clock", clock_set),
    route("GET", "/_paper/prices", prices_get),
    route("POST", "/_paper/prices", prices_set),
    route("GET", "/_paper/symbols", symbols_get),
    route("POST", "/_paper/symbols", symbols_set),
    route("GET", "/_paper/assets", assets_get),
    route("POST", "/_paper/assets", assets_set),
    route("POST", "/_paper/orders", orders_place),
    route("POST", "/_paper/orders/(?P<ref>[^/]+)/fill", order_fill),
    route("POST", "/_paper/orders/(?P<ref>[^/]+)/cancel", order_cancel),
    route("POST", "/_paper/orders/(?P<ref>[^/]+)/reject", order_reject),
    route("GET", "/_paper/faults", faults_get),
    route("POST", "/_paper/faults", faults_add),
    route("DELETE", "/_paper/faults", faults_clear),
    route("GET", "/_paper/state", state),
    route("GET", "/_paper/requests", requests_get),
    route("DELETE", "/_paper/requests", requests_clear),
    route("POST", "/_paper/tick", tick),
    route("GET", "/_paper/streams", streams_get),
    route("POST", "/_paper/streams/disconnect", streams_disconnect),
    route("POST", "/_paper/streams/inject", streams_inject),
]
