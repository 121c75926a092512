"""Signal and model endpoints (DESIGN §7). Thin: parse, call one service, format."""

from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
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
from tradeops.pagination import CursorPage
from tradeops.permissions import IsStrategyOrVerifiedStaff


class SignalListView(generics.GenericAPIView):
    permission_classes = [IsStrategyOrVerifiedStaff]
    serializer_class = SignalsResponseSerializer

    @extend_schema(
        parameters=[SignalQuerySerializer],
        responses={200: SignalsResponseSerializer, **ERRORS},
        summary="Ranked signals of the active model for a trading day (503 until warm)",
    )
    def get(self, request: Request) -> Response:
        query = SignalQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        answer = signals_answer(
            day=query.validated_data.get("date"),
            top_n=query.validated_data["top_n"],
            bottom_n=query.validated_data["bottom_n"],
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


class ModelListView(generics.GenericAPIView):
    permission_classes = [IsStrategyOrVerifiedStaff]
    serializer_class = ModelVersionSerializer
    pagination_class = CursorPage

    @extend_schema(
        parameters=[ModelFilterSerializer],
        responses={
            200: ModelVersionSerializer(many=True),
            **{k: v for k, v in ERRORS.items() if k in (400, 401, 403)},
        },
        summary="Model versions with their status and latest validation's figures (newest "
        "first, cursor-paginated)",
    )
    def get(self, request: Request) -> Response:
        filters = ModelFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        latest = Prefetch(
            "validations",
            queryset=ShadowValidation.objects.select_related("baseline").order_by(
                "-requested_at", "-id"
            ),
            to_attr="latest_validations",
        )
        qs = ModelVersion.objects.prefetch_related(latest)
        if "name" in filters.validated_data:
            qs = qs.filter(name=filters.validated_data["name"])
        if "status" in filters.validated_data:
            qs = qs.filter(status=filters.validated_data["status"])
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(ModelVersionSerializer(page, many=True).data)
