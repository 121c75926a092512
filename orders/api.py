"""Order endpoints (DESIGN §7). Thin: parse, call one service, format."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from orders.models import Origin
from orders.plans import plan_cancel, plan_create
from orders.risk import OrderIntent
from orders.selectors import order_get_visible, orders_visible_to, plan_get_visible
from orders.serializers import (
    CancelRequestSerializer,
    OrderRequestSerializer,
    OrderSerializer,
    PlanCancelSerializer,
    PlanSerializer,
    PlanWithSlicesSerializer,
    SliceRequestSerializer,
)
from orders.services import order_cancel, order_submit
from orders.status import OrderStatus
from tradeops.api_fields import QueryFilterSerializer, SymbolField
from tradeops.api_schema import ERRORS
from tradeops.api_views import ApiView
from tradeops.errors import (
    BrokerRejectedError,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
    ValidationFailed,
)
from tradeops.pagination import CursorPage
from tradeops.permissions import IsStrategyOrVerifiedStaff, strategy_scope


class OrderFilterSerializer(QueryFilterSerializer):
    status = serializers.ChoiceField(
        choices=[*(s.value for s in OrderStatus), "open", "closed"], required=False
    )
    symbol = SymbolField(required=False)
    strategy = serializers.CharField(max_length=64, required=False)


class OrderListCreateView(ApiView):
    permission_classes = [IsStrategyOrVerifiedStaff]
    serializer_class = OrderSerializer
    pagination_class = CursorPage
    query_serializer_class = OrderFilterSerializer

    @extend_schema(
        responses={200: OrderSerializer(many=True), **ERRORS},
        summary="List orders (newest first, cursor-paginated)",
    )
    def get(self, request: Request) -> Response:
        qs = orders_visible_to(request.user)
        f = self.query
        if f.get("status") == "open":
            qs = qs.filter(is_terminal=False)
        elif f.get("status") == "closed":
            qs = qs.filter(is_terminal=True)
        elif f.get("status"):
            qs = qs.filter(status=f["status"])
        if f.get("symbol"):
            qs = qs.filter(symbol=f["symbol"])
        if f.get("strategy"):
            qs = qs.filter(strategy_id=f["strategy"])
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(OrderSerializer(page, many=True).data)

    @extend_schema(
        request=OrderRequestSerializer,
        responses={
            200: OrderSerializer,
            201: OrderSerializer,
            202: OpenApiResponse(OrderSerializer, description="submitted_unconfirmed"),
            **ERRORS,
        },
        summary="Place an order (idempotent per request and UTC day)",
        description=(
            "The client_order_id is derived from the request and the UTC date: the same "
            "request again the same day returns the existing order with 200 - unless that "
            "order failed without reaching the broker: then it is checked and sent again "
            "under the same client_order_id, answered like a new order. 201: placed; "
            "202: the broker's answer was lost (status submitted_unconfirmed, resolved by "
            "reconciliation); 422 broker_rejected: the broker refused it; 503 order_failed: "
            "it did not reach the broker (the order is in the error's details). Fat-finger "
            "policy (last pre-trade check): a `warn` order is placed with its reasons in "
            "`warnings`; a `step_up` order (notional above FAT_FINGER_STEP_UP_NOTIONAL) is 422 "
            "fat_finger unless its notional is within the strategy's max_unconfirmed_notional; "
            "a `refuse` order (a limit beyond the price collar, a stop far through the market, "
            "too large a share of ADV) is 422 fat_finger; `details.tier` and `details.reasons` "
            "say why. Verified staff cannot confirm a tier here (the admin's Place order page "
            "does): their warn and step_up orders are 422 fat_finger."
        ),
    )
    def post(self, request: Request) -> Response:
        data = OrderRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        intent = _intent(request, data.validated_data)
        # A token's strategy was loaded and checked active by its authentication.
        strategy = getattr(request.auth, "strategy", None)
        outcome = order_submit(request=intent, actor=request.user, strategy=strategy)
        body = OrderSerializer(outcome.order).data
        if not (outcome.created or outcome.resent):
            return Response(body, status=200)
        if outcome.order.status == OrderStatus.REJECTED:
            raise BrokerRejectedError(
                f"The broker refused the order: {outcome.order.reject_reason}",
                details={"order": body},
            )
        if outcome.order.status == OrderStatus.FAILED:
            # Reconciliation gave up on it while this request was still waiting for the
            # broker: it is not placed (as far as anyone knows), so never a 2xx.
            raise ServiceUnavailable(
                f"The order was not placed: {outcome.order.reject_reason}. The same request "
                "again sends it again (same client_order_id).",
                code="order_failed",
                details={"order": body},
                retry_after=settings.GATE_RETRY_AFTER_SECONDS,
            )
        code = 202 if outcome.order.status == OrderStatus.SUBMITTED_UNCONFIRMED else 201
        return Response(body, status=code)


def _intent(request: Request, v: dict) -> OrderIntent:
    """The order (or plan) request as the risk checks see it; a token acts for its strategy."""
    scope = strategy_scope(request.user)
    strategy_id = v.get("strategy") or scope
    if strategy_id is None:
        raise ValidationFailed(
            "strategy is required.",
            details={"fields": {"strategy": ["This field is required."]}},
        )
    if scope is not None and strategy_id != scope:
        raise PermissionDenied(f"This token acts only for strategy '{scope}'.")
    return OrderIntent.from_request(
        v, strategy_id=strategy_id, origin=Origin.API if scope is not None else Origin.ADMIN
    )


class OrderDetailView(ApiView):
    permission_classes = [IsStrategyOrVerifiedStaff]
    serializer_class = OrderSerializer

    @extend_schema(responses={200: OrderSerializer, **ERRORS}, summary="One order")
    def get(self, request: Request, client_order_id: str) -> Response:
        order = order_get_visible(request.user, client_order_id)
        if order is None:
            raise NotFound(f"No order {client_order_id}.")
        return Response(OrderSerializer(order).data)


class OrderCancelView(ApiView):
    permission_classes = [IsStrategyOrVerifiedStaff]
    serializer_class = CancelRequestSerializer

    @extend_schema(
        request=CancelRequestSerializer,
        responses={200: OrderSerializer, **ERRORS},
        summary="Cancel an order (allowed while gated, halted or tripped)",
        parameters=[OpenApiParameter("client_order_id", str, OpenApiParameter.PATH)],
    )
    def post(self, request: Request, client_order_id: str) -> Response:
        body = CancelRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        order = order_get_visible(request.user, client_order_id)
        if order is None:
            raise NotFound(f"No order {client_order_id}.")
        order = order_cancel(
            order=order, actor=request.user, reason=body.validated_data.get("reason", "")
        )
        return Response(OrderSerializer(order).data)


# --- TWAP plans --------------------------------------------------------------------------------
class SliceCreateView(ApiView):
    permission_classes = [IsStrategyOrVerifiedStaff]
    serializer_class = SliceRequestSerializer

    @extend_schema(
        request=SliceRequestSerializer,
        responses={200: PlanWithSlicesSerializer, 201: PlanWithSlicesSerializer, **ERRORS},
        summary="Place a TWAP plan (idempotent per request and UTC day)",
        description=(
            "Slices `qty` over `duration_minutes`, one slice every `interval_seconds` (slice i "
            "due at start + i x interval). When the symbol's liquidity caps a slice at "
            "MAX_SLICE_PCT_OF_ADV of its 20-day ADV, the plan gets more, smaller slices within "
            "the same duration. One pre-trade decision: exposure on the total quantity, order "
            "size limits on the largest slice; the fat-finger policy judges the largest slice's "
            "notional and qty and the total's share of ADV (422 fat_finger, or `warnings` on "
            "the plan). The same request again the same UTC day "
            "returns the existing plan with 200. Slices are sent by the dispatcher "
            "(`run_slices`) at their scheduled second."
        ),
    )
    def post(self, request: Request) -> Response:
        data = SliceRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        outcome = plan_create(
            request=_intent(request, v),
            duration_minutes=v["duration_minutes"],
            interval_seconds=v["interval_seconds"],
            actor=request.user,
        )
        body = PlanWithSlicesSerializer(outcome.plan).data
        return Response(body, status=201 if outcome.created else 200)


def _plan_or_404(request: Request, plan_id: int) -> Any:
    plan = plan_get_visible(request.user, plan_id)
    if plan is None:
        raise NotFound(f"No TWAP plan {plan_id}.")
    return plan


class PlanDetailView(ApiView):
    permission_classes = [IsStrategyOrVerifiedStaff]
    serializer_class = PlanSerializer

    @extend_schema(responses={200: PlanSerializer, **ERRORS}, summary="One TWAP plan")
    def get(self, request: Request, plan_id: int) -> Response:
        return Response(PlanSerializer(_plan_or_404(request, plan_id)).data)


class SlicePage(CursorPage):
    ordering = "slice_num"


class PlanSlicesView(ApiView):
    permission_classes = [IsStrategyOrVerifiedStaff]
    serializer_class = OrderSerializer
    pagination_class = SlicePage

    @extend_schema(
        responses={200: OrderSerializer(many=True), **ERRORS},
        summary="A TWAP plan's slices, in slice order (cursor-paginated)",
    )
    def get(self, request: Request, plan_id: int) -> Response:
        plan = _plan_or_404(request, plan_id)
        page = self.paginate_queryset(plan.slices.select_related("strategy"))
        return self.get_paginated_response(OrderSerializer(page, many=True).data)

    @extend_schema(
        request=CancelRequestSerializer,
        responses={200: PlanCancelSerializer, **ERRORS},
        summary="Cancel the plan's slices that have not gone out (allowed while gated)",
        description=(
            "The plan becomes canceled; every slice not yet claimed for sending is canceled "
            "without reaching the broker. Slices already at the broker are left alone (cancel "
            "them as orders); a slice a dispatcher holds is canceled by its pre-send check. "
            "Never blocked by the gate, kill switch or breaker. 409 if the plan already ended."
        ),
    )
    def delete(self, request: Request, plan_id: int) -> Response:
        body = CancelRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        outcome = plan_cancel(
            plan=_plan_or_404(request, plan_id),
            actor=request.user,
            reason=body.validated_data.get("reason", ""),
        )
        return Response(
            PlanCancelSerializer(
                {"plan": outcome.plan, "canceled": outcome.canceled, "in_flight": outcome.in_flight}
            ).data
        )
