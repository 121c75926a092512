"""Top-level URLs (DESIGN §7)."""

from django.contrib import admin
from django.urls import path

handler404 = "tradeops.errors.json_not_found"
handler500 = "tradeops.errors.json_server_error"

urlpatterns = [
    path("admin/", admin.site.urls),
]
