from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    name = "reconciliation"
    verbose_name = "Reconciliation"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from orders import hooks
        from reconciliation import tasks

        post_spawn.connect(tasks.on_worker_spawn, dispatch_uid="reconciliation-cluster-start")
        hooks.order_process_started.connect(
            tasks.on_order_process_started, dispatch_uid="reconciliation-process-start"
        )
        hooks.stream_connected.connect(
            tasks.on_stream_connected, dispatch_uid="reconciliation-stream-connected"
        )
        hooks.stream_unknown_order.connect(
            tasks.on_stream_unknown_order, dispatch_uid="reconciliation-unknown-order"
        )
