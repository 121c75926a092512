"""Makes TradeOpsAdminSite the default admin site.

This module must not import django_otp.admin: it is loaded before the app registry is ready.
"""

from django.contrib.admin.apps import AdminConfig


class TradeOpsAdminConfig(AdminConfig):
    default_site = "tradeops.admin_site.TradeOpsAdminSite"
