"""OpenAPI generation (drf-spectacular): the schema states what the server enforces."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from drf_spectacular.extensions import (
    OpenApiSerializerExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from tradeops.api_fields import DIGITS_PATTERN, QueryFilterSerializer
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
    """DEFAULT_SCHEMA_CLASS. A GET's query parameters come from the view's query serializer.
    drf-spectacular documents request bodies only for PUT, PATCH and POST; ``DELETE
    /plans/{id}/slices`` takes one (a reason) and must say so, or a schema-driven client never
    sends it and a fuzzer never tries it."""

    def get_override_parameters(self) -> list[Any]:
        """A GET's query parameters: the view's ``query_serializer_class`` (the same class
        that checks them, ``tradeops.api_views.ApiView``)."""
        parameters = list(super().get_override_parameters())
        declared = getattr(self.view, "query_serializer_class", QueryFilterSerializer)
        if self.method == "GET" and declared is not QueryFilterSerializer:
            parameters.insert(0, declared)
        return parameters

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


# --- What the strict fields enforce, stated in the schema ------------------------------------
# A schema-driven client builds valid requests from these, and a fuzzer's invalid ones are
# refused (tests/tradeops/test_schemathesis.py runs schemathesis' negative_data_rejection).
class StrictSerializerScheme(OpenApiSerializerExtension):
    """Request bodies refuse unknown fields: ``additionalProperties: false``."""

    target_class = "tradeops.api_fields.StrictSerializer"
    match_subclasses = True

    def get_name(self, auto_schema: AutoSchema, direction: str) -> str:
        # "OrderRequestSerializer" -> "OrderRequest", not spectacular's "OrderRequestRequest"
        serializer = self.target if isinstance(self.target, type) else type(self.target)
        return serializer.__name__.removesuffix("Serializer").removesuffix("Request")

    def map_serializer(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request":
            schema["additionalProperties"] = False
        return schema


class BoundedIntegerScheme(OpenApiSerializerFieldExtension):
    """A JSON integer within the bounds in force (read from settings when the schema is
    generated), or the same number as a string of ASCII digits."""

    target_class = "tradeops.api_fields.BoundedIntegerField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        field = self.target
        return {
            "oneOf": [
                {"type": "integer", "minimum": field.low, "maximum": field.high},
                {"type": "string", "pattern": DIGITS_PATTERN},
            ],
            "description": f"A whole number from {field.low} to {field.high} "
            f"({field.high_setting}): a JSON integer or a string of ASCII digits.",
        }


class DecimalStringScheme(OpenApiSerializerFieldExtension):
    """A decimal as a string of ASCII digits (JSON numbers are refused)."""

    target_class = "tradeops.api_fields.DecimalStringField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        field = self.target
        schema: dict[str, Any] = {
            "type": "string",
            "pattern": field.pattern,
            "example": "99.50",
        }
        if field.allow_null:
            schema["nullable"] = True
        return schema


class PatternScheme(OpenApiSerializerFieldExtension):
    target_class = "tradeops.api_fields.PatternField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: AutoSchema, direction: str) -> dict[str, Any]:
        field = self.target
        return {"type": "string", "pattern": field.pattern, "maxLength": field.max_length}
