"""Operators' view of quotes: the "Quotes" page (every watched symbol's quote, its age and
source, the ingestors' state) and the ingestors' heartbeat rows."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from marketdata.models import QuoteIngestor
from marketdata.selectors import quote_board, quote_ingestor_last, quote_ingestors_running
from tradeops.admin_site import AdminPage
from tradeops.admin_tools import ReadOnlyAdminMixin

VIEW = "marketdata.view_quoteingestor"


@admin.register(QuoteIngestor)
class QuoteIngestorAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "hostname",
        "pid",
        "state",
        "state_since",
        "heartbeat_at",
        "stopped_at",
        "quotes_received",
        "quotes_written",
        "quotes_buffered",
        "redis_errors",
        "buffer_depth",
        "detail",
    ]
    list_filter = ["state"]
    readonly_fields = [f.name for f in QuoteIngestor._meta.fields]

    def get_urls(self) -> list:
        view = self.admin_site.admin_view(self.quotes_view)
        return [path("quotes/", view, name="marketdata_quotes"), *super().get_urls()]

    def quotes_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        ingestors = quote_ingestors_running(now=timezone.now())
        context = {
            **self.admin_site.each_context(request),
            "title": "Quotes",
            "opts": self.model._meta,
            "rows": quote_board(ingestors),
            "ingestors": ingestors,
            "last": quote_ingestor_last() if not ingestors else None,
            "max_age": settings.QUOTE_MAX_AGE_SECONDS,
            "redis_configured": bool(settings.REDIS_URL),
            "fallback_url": settings.QUOTE_FALLBACK_URL,
        }
        return TemplateResponse(request, "admin/marketdata/quotes.html", context)


admin.site.register_page(
    AdminPage(app_label="marketdata", name="Quotes", url_name="marketdata_quotes", permission=VIEW)
)
