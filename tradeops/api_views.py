"""The base of every API view: one rule for the query string (``QueryFilterSerializer``).

A view declares the query parameters its GET reads in ``query_serializer_class`` (a
``QueryFilterSerializer``; the default declares none) and finds them validated in
``self.query``. The check runs in ``initial()``, after authentication and permissions and
before the handler: every endpoint refuses what it does not read, even one that reads nothing.
The OpenAPI schema takes the GET parameters from the same class (``tradeops.api_schema``).
"""

from __future__ import annotations

from typing import Any

from rest_framework import generics
from rest_framework.request import Request

from tradeops.api_fields import QueryFilterSerializer


class ApiView(generics.GenericAPIView):
    query_serializer_class: type[QueryFilterSerializer] = QueryFilterSerializer
    query: dict[str, Any]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.query = self.query_validated(request)

    def query_validated(self, request: Request) -> dict[str, Any]:
        reading = request.method in ("GET", "HEAD")
        declared = self.query_serializer_class if reading else QueryFilterSerializer
        paging: tuple[str, ...] = ()
        if reading and self.pagination_class is not None:
            paging = (self.paginator.cursor_query_param, self.paginator.page_size_query_param)
        query = declared(data=request.query_params, context={"paging": paging})
        query.is_valid(raise_exception=True)
        return dict(query.validated_data)
