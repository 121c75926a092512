from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Orders"

    def ready(self) -> None:
        from orders import (
            receivers,  # noqa: F401 - connects TWAP recovery to reconciliation
            schema,  # noqa: F401 - registers the token scheme with drf-spectacular
        )
