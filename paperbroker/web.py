"""Minimal HTTP primitives for the raw ASGI app: request, response, exact-path routing."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from paperbroker.models import ApiError, as_bool


@dataclass
class Request:
    method: str
    path: str
    query_string: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The JSON body; an empty body is ``{}``."""
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except ValueError:
            raise ApiError(400, 40010000, "request body format is invalid") from None


@dataclass
class Response:
    status: int = 200
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        headers = [(k.lower().encode(), v.encode()) for k, v in self.headers.items()]
        if self.status == 204 or self.payload is None:
            return b"", [*headers, (b"content-length", b"0")]
        body = json.dumps(self.payload, separators=(",", ":")).encode()
        return body, [
            (b"content-type", b"application/json; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ]


def error_response(exc: ApiError) -> Response:
    return Response(exc.status, exc.body())


Handler = Callable[..., Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def route(method: str, pattern: str, handler: Handler) -> Route:
    return Route(method, re.compile(f"^{pattern}$"), handler)


def dispatch(routes: list[Route], context: Any, request: Request) -> Response:
    """Exact-path routing (alpaca-py never follows redirects, so none are issued)."""
    path_matched = False
    for candidate in routes:
        match = candidate.pattern.match(request.path)
        if not match:
            continue
        path_matched = True
        if candidate.method == request.method:
            return candidate.handler(context, request, **match.groupdict())
    if path_matched:
        raise ApiError(405, 40510000, "method not allowed")
    raise ApiError(404, 40410000, "endpoint not found")


def query_bool(request: Request, name: str) -> bool | None:
    """Query booleans arrive as ``True``/``False`` from requests, ``true``/``false`` from curl."""
    raw = request.query.get(name)
    return None if raw is None or raw == "" else as_bool(raw, name)
