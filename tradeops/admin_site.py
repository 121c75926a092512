"""The operators' admin: every page needs a password AND a verified TOTP device."""

from django_otp.admin import OTPAdminSite


class TradeOpsAdminSite(OTPAdminSite):
    site_header = "TradeOps"
    site_title = "TradeOps"
    index_title = "Operations console"

    def __init__(self, name: str = "admin") -> None:
        # OTPAdminSite defaults to name="otpadmin"; "admin" keeps every admin: URL name working.
        super().__init__(name)
