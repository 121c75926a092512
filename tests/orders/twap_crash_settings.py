"""Settings for crash-drill subprocesses: production settings plus a pre-send check that can
hold a slice right before it is sent (see ``twap_support.check_hold_while_file_exists``)."""

from tradeops.settings import *  # noqa: F403
from tradeops.settings import SLICE_PRESEND_CHECKS

SLICE_PRESEND_CHECKS = [
    *SLICE_PRESEND_CHECKS,
    "tests.orders.twap_support.check_hold_while_file_exists",
]
