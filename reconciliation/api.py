"""Reconciliation endpoints (DESIGN §7). Thin: parse, call one service, format."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from reconciliation.engine import reconciliation_run, state_get
from reconciliation.gate import gate_verdict, reconciliation_force_complete
from reconciliation.models import OrphanOrder, Quarantine, ReconciliationRun
from reconciliation.serializers import (
    ForceCompleteSerializer,
    OrphanFilterSerializer,
    OrphanSerializer,
    QuarantineFilterSerializer,
    QuarantineSerializer,
    RunRequestSerializer,
    RunSerializer,
    StatusSerializer,
)
from tradeops.api_schema import ERRORS
from tradeops.api_views import ApiView
from tradeops.errors import Conflict
from tradeops.pagination import CursorPage
from tradeops.permissions import IsStrategyOrVerifiedStaff, IsVerifiedStaff


def status_payload() -> dict:
    state = state_get()
    verdict = gate_verdict()
    return {
        "gate": {
            "open": verdict.open,
            "reason": verdict.reason,
            "by_override": verdict.by_override,
        },
        "last_success_at": state.last_success_at,
        "last_process_start_at": state.last_process_start_at,
        "last_process_start_kind": state.last_process_start_kind,
        "high_water_mark": state.high_water_mark,
        "override_active": state.override_active,
        "override_reason": state.override_reason,
        "override_by": state.override_by,
        "override_at": state.override_at,
        "last_run": ReconciliationRun.objects.first(),
        "max_age_seconds": settings.RECONCILIATION_MAX_AGE_SECONDS,
        "interval_seconds": settings.RECONCILIATION_INTERVAL_SECONDS,
    }


class StatusView(ApiView):
    permission_classes = [IsStrategyOrVerifiedStaff]
    serializer_class = StatusSerializer

    @extend_schema(
        responses={200: StatusSerializer, **ERRORS}, summary="Gate state, last runs, override"
    )
    def get(self, request: Request) -> Response:
        return Response(StatusSerializer(status_payload()).data)


class RunView(ApiView):
    permission_classes = [IsVerifiedStaff]
    serializer_class = RunRequestSerializer

    @extend_schema(
        request=RunRequestSerializer,
        responses={200: RunSerializer, **ERRORS},
        summary="Run a reconciliation now (409 if one is already running)",
    )
    def post(self, request: Request) -> Response:
        body = RunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        outcome = reconciliation_run(kind="manual", dry_run=body.validated_data["dry_run"])
        if outcome.skipped:
            raise Conflict("Another reconciliation is running; try again shortly.")
        return Response(RunSerializer(outcome.run).data)


class ForceCompleteView(ApiView):
    permission_classes = [IsVerifiedStaff]
    serializer_class = ForceCompleteSerializer

    @extend_schema(
        request=ForceCompleteSerializer,
        responses={200: StatusSerializer, **ERRORS},
        summary="Open the gate without a reconciliation (permission, reason, OTP)",
        description="409 conflict while the gate is already open (an override included).",
    )
    def post(self, request: Request) -> Response:
        body = ForceCompleteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        reconciliation_force_complete(
            actor=request.user, session=request.session, **body.validated_data
        )
        return Response(StatusSerializer(status_payload()).data)


class OrphanListView(ApiView):
    permission_classes = [IsStrategyOrVerifiedStaff]
    serializer_class = OrphanSerializer
    pagination_class = CursorPage
    query_serializer_class = OrphanFilterSerializer

    @extend_schema(
        responses={200: OrphanSerializer(many=True), **ERRORS},
        summary="Broker orders TradeOps did not place (newest first, cursor-paginated)",
    )
    def get(self, request: Request) -> Response:
        qs = OrphanOrder.objects.select_related("adopted_order")
        if "status" in self.query:
            qs = qs.filter(status=self.query["status"])
        if "symbol" in self.query:
            qs = qs.filter(symbol=self.query["symbol"])
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(OrphanSerializer(page, many=True).data)


class QuarantineListView(ApiView):
    permission_classes = [IsStrategyOrVerifiedStaff]
    serializer_class = QuarantineSerializer
    pagination_class = CursorPage
    query_serializer_class = QuarantineFilterSerializer

    @extend_schema(
        responses={200: QuarantineSerializer(many=True), **ERRORS},
        summary="Quarantines: symbols fenced for a strategy or for all (newest first, paginated)",
    )
    def get(self, request: Request) -> Response:
        qs = Quarantine.objects.select_related("orphan")
        if "active" in self.query:
            qs = qs.filter(cleared_at__isnull=self.query["active"])
        if "symbol" in self.query:
            qs = qs.filter(symbol=self.query["symbol"])
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(QuarantineSerializer(page, many=True).data)
