from django.apps import AppConfig


class SignalsConfig(AppConfig):
    name = "signals"
    verbose_name = "Signals"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from signals import tasks

        post_spawn.connect(tasks.on_worker_spawn, dispatch_uid="signals-cluster-start")
