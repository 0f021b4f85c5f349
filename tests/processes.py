"""Ending the processes a test started (servers, redis-server), by their pid."""

from __future__ import annotations

import signal
import subprocess


def end_process(proc: subprocess.Popen[bytes] | None, *, kill: bool = False) -> None:
    """Stop a process this suite started: SIGKILL, or SIGTERM then SIGKILL after 10 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
