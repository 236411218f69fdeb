"""Workers die with their study: `die_with_parent` (prctl parent-death signal plus a watchdog thread)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

# the "study": starts a worker that asks to die with it, prints the worker's PID, then waits
PARENT = textwrap.dedent(
    """
    import os, subprocess, sys, time
    env = {**os.environ, "ROBUSTPERF_DIE_WITH_PARENT": str(os.getpid())} if sys.argv[1] == "env" else dict(os.environ)
    child = subprocess.Popen([sys.executable, "-c", sys.argv[2]], env=env)
    print(child.pid, flush=True)
    time.sleep(120)
    """
)
# the worker: what `run-one` does first when a study's manifest executor starts it; SIGTERM ends it
WORKER = textwrap.dedent(
    """
    import time
    from robustperf.sweep.executors import die_with_parent_from_env
    die_with_parent_from_env()
    time.sleep(120)
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("mode, dies", [("env", True), ("none", False)])
def test_a_worker_started_by_a_study_dies_when_the_study_is_killed(mode: str, dies: bool) -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, mode, WORKER], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    time.sleep(3.0)  # let the worker import robustperf and arm itself
    assert _alive(worker)
    os.kill(parent.pid, signal.SIGKILL)  # the study alone, as kill -9 PID does
    parent.wait()
    deadline = time.time() + 10
    while time.time() < deadline and _alive(worker):
        time.sleep(0.05)
    try:
        assert _alive(worker) is not dies  # without the variable it is an orphan: what the issue saw
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)
