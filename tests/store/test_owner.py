"""owned_run: one owner of a run's attempt - lock, "already finished?", session, meter, and how it ends."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from robustperf.store import RunDir, RunSession
from robustperf.store import lock as lock_module
from robustperf.store.lock import RunLockedError
from robustperf.store.owner import owned_run
from robustperf.store.record import RunStatus
from robustperf.store.session import CTRL_C

CONFIG = {"model": {"name": "tiny_cnn"}, "seed": 0}


def _held_here(run_dir: RunDir) -> bool:
    """Whether this process holds the run's lock (`is_locked` answers for other processes only)."""
    return str((run_dir.path / lock_module.LOCK_NAME).resolve()) in lock_module._HELD


@dataclass(frozen=True)
class _Reading:
    seconds: float
    joules: float | None
    source: str


class _Meter:
    """Counts its starts and stops (a real meter may run a sampling thread that must be stopped)."""

    def __init__(self) -> None:
        self.starts = self.stops = 0

    def start(self) -> None:
        self.starts += 1

    def read(self) -> _Reading:
        return _Reading(1.0, 2.0, "fake")

    def stop(self) -> _Reading:
        self.stops += 1
        return self.read()


class _Stopped(RuntimeError):
    """A stand-in for an engine's stop-signal exception (`TrainingInterrupted` carries ``signum``)."""

    signum = 15


def test_a_ctrl_c_marks_the_run_interrupted_stops_its_meter_and_releases_the_lock(tmp_path: Path) -> None:
    rd = RunDir(tmp_path / "r")
    meter = _Meter()
    with pytest.raises(KeyboardInterrupt), owned_run(rd, meter_factory=lambda: meter) as run:
        assert _held_here(rd) and not run.finished
        run.open(CONFIG)
        run.start_meter()
        run.step = lambda: 7
        raise KeyboardInterrupt
    record = rd.read_record()
    assert record.status is RunStatus.INTERRUPTED and record.failure_reason == CTRL_C
    assert rd.read_metrics()[-1]["event"] == "interrupted" and rd.read_metrics()[-1]["step"] == 7
    assert (meter.starts, meter.stops) == (1, 1)  # no sampling thread outlives the run
    assert not _held_here(rd)


def test_an_exception_marks_the_run_failed_and_propagates(tmp_path: Path) -> None:
    rd = RunDir(tmp_path / "r")
    with pytest.raises(ValueError, match="boom"), owned_run(rd) as run:
        run.open(CONFIG)
        raise ValueError("boom")
    assert rd.read_record().status is RunStatus.FAILED and rd.read_record().failure_reason == "ValueError: boom"
    assert not _held_here(rd)


def test_an_engine_stop_exception_is_an_interrupt_and_one_the_engine_recorded_is_left_alone(tmp_path: Path) -> None:
    rd = RunDir(tmp_path / "r")
    with pytest.raises(_Stopped), owned_run(rd, interrupts=(_Stopped,)) as run:
        run.open(CONFIG)
        raise _Stopped("SIGTERM")
    assert rd.read_record().status is RunStatus.INTERRUPTED
    assert rd.read_record().failure_reason == "_Stopped: SIGTERM"
    with pytest.raises(_Stopped), owned_run(rd, interrupts=(_Stopped,)) as run:  # the engine wrote its own end
        run.open(CONFIG, resumed_at_step=0).interrupt("SIGTERM at step 3", step=3, signal_name="SIGTERM")
        raise _Stopped("SIGTERM")
    assert rd.read_record().failure_reason == "SIGTERM at step 3"  # not overwritten by the owner


def test_a_failure_before_the_session_opens_writes_nothing(tmp_path: Path) -> None:
    rd = RunDir(tmp_path / "r")
    with pytest.raises(ValueError), owned_run(rd):
        raise ValueError("bad config")
    assert rd.read_record() is None


def test_a_finished_run_is_reported_finished_and_left_untouched(tmp_path: Path) -> None:
    rd = RunDir(tmp_path / "r")
    RunSession.open(rd, CONFIG).finish(final={"clean_acc": 0.5})
    before = rd.result_path.read_bytes()
    with owned_run(rd) as run:
        assert run.finished and run.session is None
    assert rd.result_path.read_bytes() == before


def test_finish_inside_is_kept_and_the_meter_is_not_stopped_twice(tmp_path: Path) -> None:
    rd = RunDir(tmp_path / "r")
    meter = _Meter()
    with owned_run(rd, meter_factory=lambda: meter) as run:
        session = run.open(CONFIG)
        run.start_meter()
        reading = session.stop_meter()
        session.finish(final={"clean_acc": 0.5}, cost={"seconds": reading.seconds})
    assert rd.read_record().status is RunStatus.FINISHED and meter.stops == 1


def test_a_run_held_by_another_process_is_refused(tmp_path: Path) -> None:
    rd = RunDir(tmp_path / "r")
    hold = textwrap.dedent("""
        import sys, time
        from robustperf.store.lock import RunLock
        RunLock(sys.argv[1]).acquire()
        print("held", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", hold, str(rd.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        entered = False
        with pytest.raises(RunLockedError), owned_run(rd, what="evaluated"):
            entered = True
        assert not entered and rd.read_record() is None
    finally:
        proc.kill()
        proc.wait()


def test_other_ranks_take_no_lock_and_write_nothing(tmp_path: Path) -> None:
    rd = RunDir(tmp_path / "r")
    with pytest.raises(ValueError), owned_run(rd, is_main=False) as run:
        assert not _held_here(rd)
        run.open(CONFIG)
        raise ValueError("boom")
    assert not rd.path.exists()
