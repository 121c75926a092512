"""OpenAPI generation (drf-spectacular): the schema states what the server enforces."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from tradeops.errors import ERROR_CODE_NAMES, ERROR_CODES


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=ERROR_CODE_NAMES)
    message = serializers.CharField()
    details = serializers.DictField()


class ErrorSerializer(serializers.Serializer):
    """The one error envelope: ``{"error": {"code", "message", "details"}}``."""

    error = ErrorDetailSerializer()


def _error_responses() -> dict[int, OpenApiResponse]:
    by_status: dict[int, list[str]] = defaultdict(list)
    for code, (status, _meaning) in ERROR_CODES.items():
        by_status[status].append(code)
    return {
        status: OpenApiResponse(ErrorSerializer, description=", ".join(codes))
        for status, codes in sorted(by_status.items())
    }


# Error responses of every operation, built from the one error table.
ERRORS = _error_responses()


def _as_class(serializer: Any) -> Any:
    return serializer if isinstance(serializer, type) else type(serializer)


class ApiAutoSchema(AutoSchema):
    """DEFAULT_SCHEMA_CLASS. drf-spectacular documents request bodies only for PUT, PATCH and
    POST; ``DELETE /plans/{id}/slices`` takes one (a reason) and must say so, or a schema-driven
    client never sends it and a fuzzer never tries it."""

    def _get_request_body(self, direction: str = "request") -> Any:
        if self.method != "DELETE" or not self._declares_request_body():
            return super()._get_request_body(direction)
        self.method = "POST"  # the only switch spectacular offers; restored below
        try:
            return super()._get_request_body(direction)
        finally:
            self.method = "DELETE"

    def _declares_request_body(self) -> bool:
        """Whether the view declared a body with ``extend_schema(request=...)`` (rather than
        inheriting its ``serializer_class``, which describes its responses)."""
        declared = self.get_request_serializer()
        return declared is not None and _as_class(declared) is not _as_class(
            AutoSchema.get_request_serializer(self)
        )
