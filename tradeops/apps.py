from django.apps import AppConfig


class TradeOpsConfig(AppConfig):
    name = "tradeops"
    verbose_name = "TradeOps"

    def ready(self) -> None:
        from tradeops import checks, metrics

        checks.register()
        metrics.register_collectors()
