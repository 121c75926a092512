"""Django signals other apps listen to, so that ``orders`` never imports them.

(This module is not called ``signals``: that is the name of the signals app.)
"""

from django.dispatch import Signal

# An order-executing process started (qcluster, stream consumer, slice dispatcher): everything
# it believes about the broker is unverified until the next reconciliation. kwargs: kind.
order_process_started = Signal()

# The trade-update stream (re)connected. Alpaca never replays missed events, so whatever
# happened while it was away must be found by reconciliation.
stream_connected = Signal()

# The stream reported an order the database does not know (a possible orphan).
# kwargs: client_order_id, broker_order_id, symbol.
stream_unknown_order = Signal()

# A reconciliation run finished successfully (the database matches the broker as of its start).
# TWAP recovery listens: slices are re-examined only after the broker has been asked.
# kwargs: kind ("startup", "periodic", "manual", ...), run_id.
reconciliation_succeeded = Signal()
