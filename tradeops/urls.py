"""Top-level URLs (DESIGN §7)."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from signals.health import ready_signals_view
from tradeops.health import health_view, ready_view
from tradeops.metrics import metrics_view

# The admin modules load here, not in django.setup() (tradeops/admin_config.py): only a
# process that serves the URLs needs them. orders.schema registers the strategy token's
# OpenAPI scheme with drf-spectacular, which only the schema view below reads.
admin.autodiscover()
import orders.schema  # noqa: E402, F401

handler400 = "tradeops.errors.json_bad_request"
handler404 = "tradeops.errors.json_not_found"
handler500 = "tradeops.errors.json_server_error"

urlpatterns = [
    # Someone opening the console's address meets the operators' home, not a bare 404.
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("orders.urls")),
    path("api/v1/", include("reconciliation.urls")),
    path("api/v1/", include("signals.urls")),
    path("api/v1/", include("marketdata.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("health", health_view, name="health"),
    path("ready", ready_view, name="ready"),
    path("ready/signals", ready_signals_view, name="ready-signals"),
    path("metrics", metrics_view, name="metrics"),
]
