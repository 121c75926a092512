"""Strategy token authentication (placeholder until the Strategy models land)."""

from rest_framework.authentication import BaseAuthentication


class StrategyTokenAuthentication(BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        return None

    def authenticate_header(self, request):
        return self.keyword
