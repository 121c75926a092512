"""Quote endpoint (DESIGN §7). Thin: the QuoteClient decides, this formats."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from marketdata.quotes import quote_latest
from marketdata.serializers import QuoteSerializer
from tradeops.api_schema import ErrorSerializer
from tradeops.api_views import ApiView
from tradeops.permissions import IsStrategyOrVerifiedStaff
from tradeops.symbols import SYMBOL_PATTERN, SYMBOL_RULE


def _error(text: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=text)


class QuoteLatestView(ApiView):
    permission_classes = [IsStrategyOrVerifiedStaff]
    serializer_class = QuoteSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "symbol",
                OpenApiTypes.STR,
                OpenApiParameter.PATH,
                pattern=SYMBOL_PATTERN,
                description=f"US equity symbol: {SYMBOL_RULE}",
            )
        ],
        responses={
            200: QuoteSerializer,
            400: _error("validation_error (malformed symbol)"),
            401: _error("not_authenticated"),
            403: _error("permission_denied"),
            503: _error(
                "quote_stale (details: age_seconds, max_age_seconds, source) or "
                "quote_unavailable; Retry-After"
            ),
        },
        summary="The latest fresh quote of a symbol (Redis, else the ingestor, else the broker)",
    )
    def get(self, request: Request, symbol: str) -> Response:
        return Response(QuoteSerializer(quote_latest(symbol)).data)
