from django.apps import AppConfig


class TradeOpsConfig(AppConfig):
    name = "tradeops"
    verbose_name = "TradeOps"
