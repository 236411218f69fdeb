"""RunLock: one owner per run directory across processes, dead holders taken over, --force, NFS warning."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from robustperf.store.lock import RunLock, RunLockedError, is_locked, read_holder, warn_if_network_fs
from robustperf.store.owner import hold_run

HOLD = textwrap.dedent(
    """
    import sys, time
    from robustperf.store.lock import RunLock
    lock = RunLock(sys.argv[1]).acquire()
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    """
)


def _holder(path: Path, seconds: float = 60) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_refused_with_who_holds_the_run(tmp_path: Path) -> None:
    run = tmp_path / "run-1"
    proc = _holder(run)
    try:
        assert is_locked(run)
        with pytest.raises(RunLockedError) as err:
            RunLock(run).acquire()
        message = str(err.value)
        assert f"run run-1 is being trained by PID {proc.pid} on host {socket.gethostname()} (started " in message
        assert message.endswith("wait, or use --force after that process is gone")
        assert err.value.holder["pid"] == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_the_lock_of_a_killed_process_is_taken_over_with_a_warning(tmp_path: Path, caplog) -> None:
    run = tmp_path / "run-2"
    proc = _holder(run)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not is_locked(run) and read_holder(run / ".lock")["pid"] == proc.pid  # the kernel dropped the flock
    with caplog.at_level(logging.WARNING), RunLock(run) as lock:
        assert lock.held and read_holder(run / ".lock")["pid"] == os.getpid()
    assert f"taking over the lock of PID {proc.pid}" in caplog.text


# a holder that rewrites its own lock record (as a process on another host, or a dead one, would have left it)
FAKE = textwrap.dedent(
    """
    import json, os, sys, time
    from robustperf.store.lock import RunLock, _HELD, _write_record
    lock = RunLock(sys.argv[1]).acquire()
    record = json.loads(sys.argv[2])
    fd = _HELD[lock._key][1]
    _write_record(fd, record)
    os.utime(lock.path, (record["heartbeat"], record["heartbeat"]))
    print("held", flush=True)
    time.sleep(60)
    """
)


def _fake_holder(run: Path, record: dict) -> subprocess.Popen:
    import json

    proc = subprocess.Popen([sys.executable, "-c", FAKE, str(run), json.dumps(record)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_force_is_refused_while_the_holder_runs_on_this_host(tmp_path: Path) -> None:
    run = tmp_path / "run-3"
    proc = _holder(run)
    try:
        with pytest.raises(RunLockedError) as err:
            RunLock(run, force=True).acquire()
        assert f"--force refused: the holder (PID {proc.pid}" in str(err.value)
        assert "is still running" in str(err.value)
        assert read_holder(run / ".lock")["pid"] == proc.pid  # its lock file is untouched
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(("where", "age_s", "taken"), [
    ("this-host-dead-pid", 0, True), ("this-host-reused-pid", 0, True),
    ("other-host-fresh", 10, False), ("other-host-stale", 3600, True)])
def test_force_takes_a_lock_only_from_a_gone_holder(tmp_path: Path, caplog, where: str, age_s: float,
                                                   taken: bool) -> None:
    """The kernel still reports the lock held (an NFS client that died): --force decides from the record."""
    from robustperf.store.lock import process_start

    run = tmp_path / "run-3"
    record = {"host": socket.gethostname(), "pid": _dead_pid(), "started": "then", "what": "trained",
              "heartbeat": time.time() - age_s}
    if where == "this-host-reused-pid":  # a live PID whose start time is not the recorded one
        record.update(pid=os.getpid(), pid_start=(process_start(os.getpid()) or 0) + 1)
    if where.startswith("other-host"):
        record.update(host="elsewhere.example", pid=os.getpid())
    proc = _fake_holder(run, record)
    try:
        if not taken:
            with pytest.raises(RunLockedError, match=r"--force refused: .*its lease on host elsewhere.example was "
                                                     r"renewed \d+ s ago"):
                RunLock(run, force=True).acquire()
            return
        with caplog.at_level(logging.WARNING), RunLock(run, force=True) as lock:
            assert lock.held and read_holder(run / ".lock")["pid"] == os.getpid()
            probe = subprocess.run([sys.executable, "-c", HOLD, str(run), "0"], capture_output=True, text=True)
            assert probe.returncode != 0 and "RunLockedError" in probe.stderr  # the new lock file excludes others
        assert f"--force breaks the lock of PID {record['pid']}" in caplog.text
    finally:
        proc.kill()
        proc.wait()


def test_a_holder_renews_its_lease(tmp_path: Path) -> None:
    import threading

    from robustperf.store.lock import renew_leases

    run = tmp_path / "run-hb"
    with RunLock(run):
        first = read_holder(run / ".lock")["heartbeat"]
        assert any(t.name == "robustperf-lock-heartbeat" and t.is_alive() for t in threading.enumerate())
        time.sleep(0.02)
        assert renew_leases() >= 1 and read_holder(run / ".lock")["heartbeat"] > first
        assert (run / ".lock").stat().st_size == 512  # a padded record, rewritten in place


def test_reentrant_in_one_process_and_released_by_the_outermost(tmp_path: Path) -> None:
    run = tmp_path / "run-4"
    (run).mkdir()
    (run / "config.json").write_text("{}")
    outer = RunLock(run).acquire()
    inner = RunLock(run).acquire()  # train() inside run_one: same process, same run
    inner.release()
    probe = subprocess.run([sys.executable, "-c", HOLD, str(run), "0"], capture_output=True, text=True)
    assert probe.returncode != 0 and "RunLockedError" in probe.stderr
    outer.release()
    assert subprocess.run([sys.executable, "-c", HOLD, str(run), "0"], capture_output=True).returncode == 0


def test_a_run_that_never_started_leaves_no_directory(tmp_path: Path) -> None:
    run = tmp_path / "run-5"
    with hold_run(run):
        assert run.is_dir()
    assert not run.exists()


def test_hold_run_cleans_stale_temps_and_a_torn_metrics_tail(tmp_path: Path, caplog) -> None:
    run = tmp_path / "run-6"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "checkpoints" / ".last.pt.abc123.tmp").write_bytes(b"partial")
    (run / ".result.json.xyz.tmp").write_text("{")
    (run / "metrics.jsonl").write_text('{"kind": "train", "step": 1}\n{"kind": "tr')
    with caplog.at_level(logging.WARNING), hold_run(run):
        assert not list(run.rglob("*.tmp"))
        assert (run / "metrics.jsonl").read_text() == '{"kind": "train", "step": 1}\n'
    assert "removed 2 temp file(s)" in caplog.text and "dropped 1 torn line" in caplog.text


def test_network_file_system_warning(tmp_path: Path, monkeypatch, caplog) -> None:
    import robustperf.store.lock as lock_mod

    assert warn_if_network_fs(tmp_path) is (lock_mod.filesystem_type(tmp_path) in lock_mod.NETWORK_FS_TYPES)
    monkeypatch.setattr(lock_mod, "filesystem_type", lambda path: "nfs4")
    with caplog.at_level(logging.WARNING):
        assert warn_if_network_fs(tmp_path / "nfs")
    assert "is on nfs4: run locks there are only as reliable as its lock service" in caplog.text


def test_parallel_acquirers_get_exactly_one_owner(tmp_path: Path) -> None:
    """8 processes race for one run: exactly one gets it, the others are refused."""
    race = textwrap.dedent(
        """
        import sys, time
        from robustperf.store.lock import RunLock, RunLockedError
        time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
        try:
            with RunLock(sys.argv[1]):
                print("owner", flush=True)
                time.sleep(1.0)
        except RunLockedError:
            print("refused", flush=True)
        """
    )
    start = time.time() + 1.5
    procs = [subprocess.Popen([sys.executable, "-c", race, str(tmp_path / "run"), str(start)], stdout=subprocess.PIPE,
                              text=True) for _ in range(8)]
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outs.count("owner") == 1 and outs.count("refused") == 7, outs
