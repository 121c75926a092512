from django.apps import AppConfig


class SignalsConfig(AppConfig):
    name = "signals"
    verbose_name = "Signals"

    def ready(self) -> None:
        from django.core import checks
        from django_q.signals import post_spawn

        from signals import tasks
        from signals.checks import check_signals_settings
        from tradeops.checks import TRADING

        checks.register(check_signals_settings, TRADING)

        post_spawn.connect(tasks.on_worker_spawn, dispatch_uid="signals-cluster-start")
