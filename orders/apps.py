from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Orders"

    def ready(self) -> None:
        # (orders.schema, the token's OpenAPI scheme, is imported by the root URLconf)
        from orders import receivers  # noqa: F401 - connects TWAP recovery to reconciliation
