from django.urls import path

from reconciliation import api

urlpatterns = [
    path("reconciliation/status", api.StatusView.as_view(), name="reconciliation-status"),
    path("reconciliation/run", api.RunView.as_view(), name="reconciliation-run"),
    path(
        "reconciliation/force-complete",
        api.ForceCompleteView.as_view(),
        name="reconciliation-force-complete",
    ),
    path("orphans", api.OrphanListView.as_view(), name="orphans"),
    path("quarantines", api.QuarantineListView.as_view(), name="quarantines"),
]
