"""Settings for the demo's failure drills: production settings, except that the demo child
running the management command named by DEMO_TEST_FAIL_COMMAND exits at start-up (status 3),
as a process that cannot start would. Every process of the demo imports these settings; only
that child stops here."""

import os
import sys

from tradeops.settings import *  # noqa: F403

if sys.argv[1:2] == [os.environ.get("DEMO_TEST_FAIL_COMMAND")]:
    sys.stderr.write(f"demo_settings: {sys.argv[1]} fails at start-up (test drill)\n")
    raise SystemExit(3)
