"""Stop signals: SIGTERM/SIGUSR1/SIGUSR2/SIGHUP end a run gracefully at the next step boundary.

What the schedulers send before they stop a job: Slurm's ``scancel`` and preemption (SIGTERM), a time
limit with ``--signal=USR1@120`` (our scripts), submitit's timeout/preemption signal (SIGUSR2), LSF's
``-wa`` warning action, PBS and a closed terminal (SIGHUP). The loop installs a `StopRequest` while it
trains and checks it after each step and between the batches of its per-epoch evaluation; when a signal
arrived it writes ``last.pt`` at that step, marks the run ``interrupted`` and raises `TrainingInterrupted`.

`REQUEUE_EXIT_CODE` is what a process that stopped this way exits with when it wants its task back
(`requeue_after_interrupt` asks Slurm for it with ``scontrol requeue`` where the job allows it).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

from robustperf.early_signals import _EARLY, STOP_SIGNALS, catch_early_stop_signals

log = logging.getLogger(__name__)

# EX_TEMPFAIL: "try again later". `run-one` exits with it after a stop signal checkpointed the run, so a
# wrapper (or a human) can tell "resumable, requeue me" from a failure (1) and from a signal death (128+n).
REQUEUE_EXIT_CODE = 75
_ACTIVE: list[StopRequest] = []  # the installed requests, innermost last


def stop_requested() -> int | None:
    """The stop signal received by the innermost installed `StopRequest` (None: none, or none installed).

    What code far from the loop (an evaluation between two batches) checks to return early.
    """
    return _ACTIVE[-1].signum if _ACTIVE else None


class TrainingInterrupted(RuntimeError):
    """A run stopped by a signal after writing a checkpoint at the current step; rerun it to resume.

    Attributes:
        signum: the signal received; a CLI exits with ``128 + signum`` as a shell would.
        step: the step the checkpoint holds.
    """

    def __init__(self, signum: int, step: int, run_dir: Path) -> None:
        self.signum, self.step = signum, step
        super().__init__(f"{signal.Signals(signum).name} received: checkpoint written at step {step} in "
                         f"{run_dir}; run the same command again to resume from it")


class StopRequest:
    """Records the first stop signal (`STOP_SIGNALS`) while installed; a second one gets the previous
    handler's behaviour (default: terminate at once), so a stuck run can still be killed."""

    def __init__(self) -> None:
        self.signum: int | None = _EARLY[0] if _EARLY else None  # a warning that came before the run began
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
            log.warning("%s received: finishing this step, writing a checkpoint, then stopping",
                        signal.Signals(signum).name)
            return
        previous = self._previous.get(signum, signal.SIG_DFL)
        self.__exit__()
        if callable(previous):
            previous(signum, frame)
        else:
            os.kill(os.getpid(), signum)


__all__ = ["REQUEUE_EXIT_CODE", "STOP_SIGNALS", "StopRequest", "TrainingInterrupted", "catch_early_stop_signals",
           "stop_requested"]
