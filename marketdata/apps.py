from django.apps import AppConfig


class MarketDataConfig(AppConfig):
    name = "marketdata"
    verbose_name = "Market data"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from marketdata import tasks

        post_spawn.connect(tasks.on_worker_spawn, dispatch_uid="marketdata-assets-schedule")
