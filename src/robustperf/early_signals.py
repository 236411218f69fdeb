"""The stop signals, caught from a task's first moment (standard library only: nothing slow to import).

A scheduler may send its warning (USR1 before a time limit, USR2 from submitit, TERM on preemption) while a
task's Python is still importing torch; USR1's and USR2's default action would end the task before the run
could checkpoint. `catch_early_stop_signals` records them until the run installs its own handler
(`robustperf.training.signals.StopRequest`), which then stops at its first step.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP)
_EARLY: list[int] = []  # stop signals that arrived before a run installed its StopRequest


def catch_early_stop_signals() -> None:
    """Record stop signals from now on, until a run installs its `StopRequest` (which then sees them)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def record(signum: int, frame: Any) -> None:
        log.warning("%s received before the run started: it stops at its first step", signal.Signals(signum).name)
        _EARLY.append(signum)

    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, record)


__all__ = ["STOP_SIGNALS", "catch_early_stop_signals"]
