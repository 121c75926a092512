"""The operators' admin: every page needs a password AND a verified TOTP device."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django_otp.admin import OTPAdminSite


@dataclass(frozen=True)
class AdminPage:
    """A custom admin page (a ModelAdmin's get_urls view) listed on the index under its app,
    like a model, for users holding ``permission``."""

    app_label: str
    name: str
    url_name: str
    permission: str


class TradeOpsAdminSite(OTPAdminSite):
    site_header = "TradeOps"
    site_title = "TradeOps"
    index_title = "Operations console"

    def __init__(self, name: str = "admin") -> None:
        # OTPAdminSite defaults to name="otpadmin"; "admin" keeps every admin: URL name working.
        super().__init__(name)
        self.pages: list[AdminPage] = []

    def register_page(self, page: AdminPage) -> None:
        self.pages.append(page)

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[Any]:
        apps = super().get_app_list(request, app_label)
        for app in apps:
            for page in self.pages:
                if page.app_label != app["app_label"]:
                    continue
                if not request.user.has_perm(page.permission):
                    continue
                url = reverse(f"{self.name}:{page.url_name}")
                app["models"].append(
                    {
                        "name": page.name,
                        "object_name": page.name.replace(" ", ""),
                        "perms": {"view": True},
                        "admin_url": url,
                        "add_url": None,
                        "view_only": True,
                    }
                )
            app["models"].sort(key=lambda m: str(m["name"]).lower())
        return apps
