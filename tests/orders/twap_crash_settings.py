"""Settings for crash-drill subprocesses: production settings plus a pre-send check that can
hold a slice right before it is sent (see ``twap_support.check_hold_while_file_exists``), and a
hold in the middle of start-up: while the file named by TWAP_TEST_START_HOLD_FILE exists, the
process stops here — Django is importing its settings, so the command has installed no signal
handler and registered nothing — after writing its pid to ``<file>.reached``, so that a test can
SIGKILL it at exactly that point."""

import os
import time

from tradeops.settings import *  # noqa: F403
from tradeops.settings import SLICE_PRESEND_CHECKS

SLICE_PRESEND_CHECKS = [
    *SLICE_PRESEND_CHECKS,
    "tests.orders.twap_support.check_hold_while_file_exists",
]

_start_hold = os.environ.get("TWAP_TEST_START_HOLD_FILE")
if _start_hold and os.path.exists(_start_hold):
    with open(_start_hold + ".reached", "w") as _marker:
        _marker.write(str(os.getpid()))
    _deadline = time.monotonic() + 60  # a forgotten hold file must not hang the suite
    while os.path.exists(_start_hold) and time.monotonic() < _deadline:
        time.sleep(0.05)
