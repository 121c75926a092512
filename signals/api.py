"""Signal and model endpoints (DESIGN §7). Thin: parse, call one service, format."""

from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from signals.models import ModelVersion, ShadowValidation
from signals.serializers import (
    ModelFilterSerializer,
    ModelVersionSerializer,
    SignalQuerySerializer,
    SignalsResponseSerializer,
)
from signals.serving import signals_answer
from tradeops.api_schema import ERRORS
from tradeops.api_views import ApiView
from tradeops.pagination import CursorPage
from tradeops.permissions import IsStrategyOrVerifiedStaff


class SignalListView(ApiView):
    permission_classes = [IsStrategyOrVerifiedStaff]
    serializer_class = SignalsResponseSerializer
    query_serializer_class = SignalQuerySerializer

    @extend_schema(
        responses={200: SignalsResponseSerializer, **ERRORS},
        summary="Ranked signals of the active model for a trading day (503 until warm)",
    )
    def get(self, request: Request) -> Response:
        answer = signals_answer(
            day=self.query.get("date"),
            top_n=self.query["top_n"],
            bottom_n=self.query["bottom_n"],
        )
        # Built directly (the serializer documents the shape): with 500 names a per-item
        # serializer would be most of the request's time.
        latest = answer.latest_trading_day
        body = {
            "model": {"name": answer.model.name, "version": answer.model.version},
            "as_of": answer.as_of.isoformat(),
            "generated_at": serializers.DateTimeField().to_representation(answer.generated_at),
            "latest_trading_day": latest.isoformat() if latest else None,
            "stale": answer.stale,
            "signals": answer.signals,
            "missing": answer.missing,
        }
        return Response(body)


class ModelListView(ApiView):
    permission_classes = [IsStrategyOrVerifiedStaff]
    serializer_class = ModelVersionSerializer
    pagination_class = CursorPage
    query_serializer_class = ModelFilterSerializer

    @extend_schema(
        responses={
            200: ModelVersionSerializer(many=True),
            **{k: v for k, v in ERRORS.items() if k in (400, 401, 403)},
        },
        summary="Model versions with their status and latest validation's figures (newest "
        "first, cursor-paginated)",
    )
    def get(self, request: Request) -> Response:
        latest = Prefetch(
            "validations",
            queryset=ShadowValidation.objects.select_related("baseline").order_by(
                "-requested_at", "-id"
            ),
            to_attr="latest_validations",
        )
        qs = ModelVersion.objects.prefetch_related(latest)
        if "name" in self.query:
            qs = qs.filter(name=self.query["name"])
        if "status" in self.query:
            qs = qs.filter(status=self.query["status"])
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(ModelVersionSerializer(page, many=True).data)
