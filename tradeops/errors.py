"""Domain errors and their one JSON shape.

Every error a client can see is ``{"error": {"code", "message", "details"}}`` with the status the
code implies (DESIGN §7). Services raise TradeOpsError subclasses; the DRF exception handler
renders them, and it renders DRF's own exceptions in the same shape, so a bad request is always a
4xx with a reason, never a 500.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpResponse, JsonResponse

if TYPE_CHECKING:
    from rest_framework import exceptions as drf
    from rest_framework.response import Response

logger = logging.getLogger("tradeops.errors")

# Every code a client can receive, with its HTTP status and meaning. The README's error table
# and the OpenAPI error responses must list exactly these (tests/tradeops/test_error_codes.py);
# a new code goes here first.
ERROR_CODES: dict[str, tuple[int, str]] = {
    "validation_error": (400, "malformed body, query or field; per-field reasons in details"),
    "not_authenticated": (401, "no credentials, or an unknown or revoked token"),
    "permission_denied": (403, "the token or user may not do this (another strategy's order...)"),
    "otp_required": (403, "the action relaxes a control and needs a fresh OTP code (otp_token)"),
    "otp_invalid": (403, "the OTP code is wrong or already used, or wrong codes are throttled"),
    "not_found": (404, "no such object visible to the caller, or no such endpoint"),
    "method_not_allowed": (405, "the endpoint does not take this HTTP method"),
    "not_acceptable": (406, "the Accept header excludes application/json"),
    "conflict": (409, "the object's state forbids it (already ended, a run is going)"),
    "payload_too_large": (413, "a body over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB)"),
    "risk_limit": (422, "a pre-trade limit: order size, notional or position"),
    "quarantined": (422, "the symbol is fenced for this strategy (an orphan, drift)"),
    "reduce_only_violation": (422, "while halted or gated only reduce-only orders pass"),
    "unknown_symbol": (422, "the broker lists no active, tradable asset with this symbol"),
    "not_shortable": (422, "a sell that could open a short of an asset that cannot be shorted"),
    "fat_finger": (
        422,
        "the fat-finger policy refused it, or it needs a confirmation the caller lacks "
        "(details.tier, details.reasons)",
    ),
    "broker_rejected": (422, "the broker refused the order (its reason in the message)"),
    "throttled": (429, "too many requests; Retry-After says when to try again"),
    "internal_error": (500, "a bug: logged with its traceback"),
    "kill_switch": (503, "the kill switch is engaged (Retry-After)"),
    "circuit_breaker": (503, "the circuit breaker is tripped (Retry-After)"),
    "gated": (503, "no recent reconciliation: new risk waits for one (Retry-After)"),
    "broker_unavailable": (503, "the broker cannot be asked now (Retry-After)"),
    "order_failed": (
        503,
        "the order never reached the broker; asking again re-sends it (the order in details)",
    ),
    "asset_list_unavailable": (
        503,
        "the broker's asset list was never loaded and the broker cannot be asked now",
    ),
    "quote_stale": (
        503,
        "the newest quote is older than QUOTE_MAX_AGE_SECONDS (its age in details)",
    ),
    "quote_unavailable": (503, "no quote for the symbol from any source"),
    "signals_not_ready": (503, "the feature cache is not warm or no model is active"),
}
ERROR_CODE_NAMES = sorted(ERROR_CODES)


class TradeOpsError(Exception):
    status_code = 400
    code = "error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}
        self.retry_after = retry_after

    def as_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class ValidationFailed(TradeOpsError):
    status_code = 400
    code = "validation_error"


class NotAuthenticated(TradeOpsError):
    status_code = 401
    code = "not_authenticated"


class PermissionDenied(TradeOpsError):
    status_code = 403
    code = "permission_denied"


class NotFound(TradeOpsError):
    status_code = 404
    code = "not_found"


class Conflict(TradeOpsError):
    status_code = 409
    code = "conflict"


class RiskRejected(TradeOpsError):
    """A definitive refusal by a pre-trade check (limits, quarantine, reduce-only, fat finger)."""

    status_code = 422
    code = "risk_limit"


class ServiceUnavailable(TradeOpsError):
    """Trading is halted or the broker cannot be asked: try again later (kill switch, gate...)."""

    status_code = 503
    code = "broker_unavailable"


class BrokerRejectedError(TradeOpsError):
    """The broker definitively refused an order (4xx); the order row records the reason."""

    status_code = 422
    code = "broker_rejected"


class PayloadTooLarge(TradeOpsError):
    status_code = 413
    code = "payload_too_large"


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _flatten(detail: Any, prefix: str = "") -> list[str]:
    if isinstance(detail, dict):
        out: list[str] = []
        for key, value in detail.items():
            name = key if key != "non_field_errors" else ""
            out.extend(_flatten(value, f"{prefix}{name}." if name else prefix))
        return out
    if isinstance(detail, list):
        return [line for item in detail for line in _flatten(item, prefix)]
    return [f"{prefix.rstrip('.')}: {detail}" if prefix else str(detail)]


def _sentence(lines: list[str]) -> str:
    """Field messages as one sentence: "a: Required; b: Too long." (not "Required.; b: ...");
    the per-field lists stay in ``details.fields``."""
    if not lines:
        return "Invalid input."
    text = "; ".join(line.removesuffix(".") for line in lines)
    return text if text.endswith(("?", "!")) else f"{text}."


def _drf_to_error(exc: drf.APIException) -> tuple[int, dict[str, Any], dict[str, str]]:
    from rest_framework import exceptions as drf

    headers: dict[str, str] = {}
    if isinstance(exc, drf.ValidationError):
        message = _sentence(_flatten(exc.detail))
        return 400, error_body("validation_error", message, {"fields": exc.detail}), headers
    if isinstance(exc, drf.UnsupportedMediaType):
        message = "Request body must be JSON (Content-Type: application/json)."
        return 400, error_body("validation_error", message), headers
    if isinstance(exc, drf.ParseError):
        return 400, error_body("validation_error", f"Malformed request body: {exc.detail}"), headers
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
        status = exc.status_code
        code = "not_authenticated" if status == 401 else "permission_denied"
        return status, error_body(code, str(exc.detail)), headers
    if isinstance(exc, drf.Throttled):
        if exc.wait:
            headers["Retry-After"] = str(int(exc.wait))
        return 429, error_body("throttled", str(exc.detail)), headers
    codes = {
        drf.PermissionDenied: "permission_denied",
        drf.NotFound: "not_found",
        drf.MethodNotAllowed: "method_not_allowed",
        drf.NotAcceptable: "not_acceptable",
    }
    code = next((c for cls, c in codes.items() if isinstance(exc, cls)), "error")
    return exc.status_code, error_body(code, str(exc.detail)), headers


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF EXCEPTION_HANDLER: one error shape for everything an API view can raise."""
    # DRF here, not at the top: services raise these errors in processes that serve no API
    # (qcluster, reconcile), which need not import DRF to start (issue 14 point 8)
    from rest_framework import exceptions as drf
    from rest_framework.response import Response
    from rest_framework.views import set_rollback  # late: rest_framework.views imports us

    set_rollback()
    if isinstance(exc, TradeOpsError):
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
        return Response(exc.as_dict(), status=exc.status_code, headers=headers)
    if isinstance(exc, SuspiciousOperation):  # raised lazily when a view first reads the body
        error = _suspicious_to_error(exc)
        return Response(error.as_dict(), status=error.status_code)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    if isinstance(exc, drf.APIException):
        status, body, headers = _drf_to_error(exc)
        return Response(body, status=status, headers=headers)
    logger.exception("unhandled error in %s", context.get("view").__class__.__name__)
    return Response(error_body("internal_error", "Internal error; it has been logged."), status=500)


def _suspicious_to_error(exc: SuspiciousOperation) -> TradeOpsError:
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return PayloadTooLarge(f"Request body too large: at most {limit} bytes.")
    return ValidationFailed(f"Bad request: {exc}")


def json_bad_request(request: Any, exception: Exception | None = None) -> HttpResponse:
    """handler400 for what Django refuses before or outside a DRF view (an oversized form is a
    SuspiciousOperation there): 413 for a body over DATA_UPLOAD_MAX_MEMORY_SIZE, the error
    envelope under /api/."""
    if isinstance(exception, SuspiciousOperation):
        error = _suspicious_to_error(exception)
    else:
        error = ValidationFailed("Bad request.")
    if request.path.startswith("/api/"):
        return JsonResponse(error.as_dict(), status=error.status_code)
    return HttpResponse(
        f"{error.message}\n", status=error.status_code, content_type="text/plain; charset=utf-8"
    )


def json_not_found(request: Any, exception: Exception | None = None) -> JsonResponse:
    """handler404 for paths outside DRF views: API clients get JSON, not an HTML page."""
    if request.path.startswith("/api/"):
        body = error_body("not_found", f"No such endpoint: {request.path}")
        return JsonResponse(body, status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def json_server_error(request: Any) -> JsonResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(
            error_body("internal_error", "Internal error; it has been logged."), status=500
        )
    from django.views.defaults import server_error

    return server_error(request)
