"""Who a process is, for bookkeeping done once per process start (the gate's process starts,
the job cluster's start-up work)."""

from __future__ import annotations

import socket
from pathlib import Path


def process_identity(pid: int) -> str:
    """host:pid:start-time. The start time (from /proc where available) keeps a reused pid
    from looking like the same process."""
    try:
        start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        start = "?"
    return f"{socket.gethostname()}:{pid}:{start}"
