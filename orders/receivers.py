"""Signal receivers of the orders app (connected in ``OrdersConfig.ready``)."""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from orders.hooks import reconciliation_succeeded

logger = logging.getLogger(__name__)


@receiver(reconciliation_succeeded, dispatch_uid="orders.recover_slices")
def recover_slices_after_reconciliation(sender: Any, kind: str = "", **kwargs: Any) -> None:
    """TWAP recovery runs only after the broker has been asked (fix plan §1: reconciliation
    first, or a slice that reached the broker just before a crash would be sent again).

    After the startup reconciliation: always. After any other successful run: only if a
    claimed, unsent slice may belong to a dead dispatcher, since a dispatcher can restart
    without the job cluster (and so without a "startup" run) and its claims would otherwise
    wait for the next cluster start. A failure is logged, never raised into reconciliation.
    """
    # imported here: orders.recovery pulls in the dispatcher, quotes and plans, which a
    # process need not load to start (django.setup(); issue 14 point 8, cold start)
    from orders.recovery import slices_recover, stale_claims_exist

    if kind != "startup" and not stale_claims_exist():
        return
    try:
        report = slices_recover()
    except Exception:
        logger.exception(
            "TWAP recovery after %s reconciliation %s failed", kind, kwargs.get("run_id")
        )
        return
    logger.info("TWAP recovery after %s reconciliation: %s", kind, report.summary())
