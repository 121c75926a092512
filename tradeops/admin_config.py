"""Makes TradeOpsAdminSite the default admin site, and finds the apps' admin modules only
where the admin is served.

``AdminConfig`` imports every app's ``admin`` module in ``django.setup()``: the admin pages,
their forms and, through them, the DRF views and the OpenAPI schema — about 0.5 s of a
process start that serves no HTTP (qcluster workers, ``reconcile``, ``run_slices``; issue 14
point 8, cold start). Here ``admin.autodiscover()`` runs where the admin is needed instead:
the root URLconf (``tradeops/urls.py``) and the admin system checks.

This module must not import django_otp.admin: it is loaded before the app registry is ready.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.apps import SimpleAdminConfig
from django.contrib.admin.checks import check_admin_app, check_dependencies
from django.core import checks


def check_admin_registry(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Django's admin check on the registry the web serves: discover the admin modules
    first (the checks may run before anything loaded the URLconf)."""
    from django.contrib import admin

    admin.autodiscover()
    return check_admin_app(app_configs, **kwargs)


class TradeOpsAdminConfig(SimpleAdminConfig):
    default_site = "tradeops.admin_site.TradeOpsAdminSite"

    def ready(self) -> None:
        # SimpleAdminConfig.ready() without its check_admin_app: ours discovers first
        checks.register(check_dependencies, checks.Tags.admin)
        checks.register(check_admin_registry, checks.Tags.admin)
