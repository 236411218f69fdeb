"""Executors: the local pool uses both cores, reruns skip, crashes and kills lose nothing, the manifest agrees."""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from robustperf.store import load_index, read_jsonl
from robustperf.sweep import (
    create_executor,
    expand,
    study_from_dict,
)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # spawn workers inherit sys.path, so they can import the targets
import sweep_targets  # noqa: E402

ROOT = HERE.parents[1]


def _configs(widths: list[int], seeds: tuple[int, ...] = (0,)) -> list[dict]:
    study = study_from_dict({"name": "exec", "base": {"model": {"name": "tiny_cnn"}},
                             "grid": {"model.kwargs.width": widths}, "seeds": list(seeds)})
    return [c.resolved() for c in expand(study)]


def _finished_ids(runs_dir: Path) -> list[str]:
    return sorted(r["run_id"] for r in load_index(runs_dir) if r["status"] == "finished")


def _index_signature(runs_dir: Path) -> list[tuple]:
    """What must match between executors: run ids, statuses and results (not timings or paths)."""
    return sorted((r["run_id"], r["status"], r.get("final.seed"), r.get("final.width")) for r in load_index(runs_dir))


def test_local_pool_uses_both_cores_and_rerun_skips(tmp_path: Path) -> None:
    configs = _configs([1, 2, 3, 4])
    fn = functools.partial(sweep_targets.busy_run, n_loops=3000)
    with create_executor("local", workers=2) as ex:
        result = ex.run(fn, configs, tmp_path / "pool")
    assert result.count("finished") == 4
    runs = read_jsonl(tmp_path / "pool" / "executions.jsonl")
    assert len({r["pid"] for r in runs}) == 4  # a fresh process per run (max_tasks_per_child=1)
    assert {r["slot"] for r in runs} == {"0", "1"}
    assert all(r["cuda_visible_devices"] == "" and r["omp_threads"] == "1" for r in runs)  # 2 cores / 2 workers
    spans = sorted((r["start"], r["end"]) for r in runs)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))  # runs overlapped in time

    with create_executor("local", workers=2) as ex:
        again = ex.run(fn, configs, tmp_path / "pool")
    assert again.count("skipped") == 4
    assert len(read_jsonl(tmp_path / "pool" / "executions.jsonl")) == 4  # nothing ran twice


def test_local_pool_wall_time_is_clearly_below_the_sequential_sum(tmp_path: Path) -> None:
    configs = _configs([1, 2, 3, 4])
    fn = functools.partial(sweep_targets.busy_run, n_loops=3000)
    timings = []
    for attempt in range(2):  # a serial pool never passes; a burst of load from other users may fail one try
        with create_executor("local", workers=1) as ex:  # the sequential baseline, under the same load
            sequential = ex.run(fn, configs, tmp_path / f"sequential{attempt}").wall_seconds
        with create_executor("local", workers=2) as ex:
            parallel = ex.run(fn, configs, tmp_path / f"pool{attempt}").wall_seconds
        timings.append((round(parallel, 2), round(sequential, 2)))
        if parallel < 0.8 * sequential:
            return
    control = _plain_parallel_ratio()
    if control > 0.8:
        pytest.skip(f"this shared machine cannot run two CPU-bound processes faster than one right now (two plain "
                    f"processes: {control:.2f} of the sequential time; load {os.getloadavg()[0]:.1f}); "
                    f"pool (parallel, sequential) wall times {timings}")
    pytest.fail(f"two workers were not faster than one: (parallel, sequential) wall times {timings}; two plain "
                f"processes managed {control:.2f} of the sequential time")


def _plain_parallel_ratio(n_loops: int = 3000) -> float:
    """Control: two plain processes doing the work at once, over the same work done twice in a row.

    Process start-up is excluded (both wait on an event), so ~0.5 means two free cores and ~1.0 means the
    machine is running us on one core's worth of CPU, whatever our pool does.
    """
    ctx = multiprocessing.get_context("spawn")
    start = time.perf_counter()
    sweep_targets._spin(n_loops)
    sweep_targets._spin(n_loops)
    sequential = time.perf_counter() - start
    go, ends = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=sweep_targets.spin_on_signal, args=(go, ends, n_loops)) for _ in range(2)]
    for p in procs:
        p.start()
    time.sleep(3.0)  # let both finish importing
    t0 = time.time()
    go.set()
    finished = [ends.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    return (max(finished) - t0) / sequential


def test_worker_crash_is_recorded_and_the_rest_finishes(tmp_path: Path) -> None:
    configs = _configs([12, 13, 14])
    with create_executor("local", workers=2) as ex:
        result = ex.run(sweep_targets.failing_run, configs, tmp_path)
    statuses = [r["status"] for r in result.results]
    assert statuses == ["finished", "failed", "finished"]
    assert "worker crashed" in result.results[1]["failure_reason"]


STUDY_SCRIPT = textwrap.dedent("""
    import functools, sys
    sys.path.insert(0, {here!r})
    import sweep_targets
    from robustperf.sweep import create_executor, expand, study_from_dict
    study = study_from_dict({{"name": "kill", "grid": {{"model.kwargs.width": list(range(1, 7))}}}})
    configs = [c.resolved() for c in expand(study)]
    with create_executor("local", workers=2) as ex:
        ex.run(functools.partial(sweep_targets.busy_run, n_loops=2500), configs, {runs!r})
""")


def test_killed_study_rerun_completes_without_duplicates(tmp_path: Path) -> None:
    script = STUDY_SCRIPT.format(here=str(HERE), runs=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    log = tmp_path / "executions.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and len(read_jsonl(log)) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the study and its workers, midway
    proc.wait()
    done_before = len(read_jsonl(log))
    assert 2 <= done_before < 6

    subprocess.run([sys.executable, "-c", script], timeout=120, check=True)
    expected = sorted(_expected_ids(6))
    assert _finished_ids(tmp_path) == expected
    assert sorted(r["run_id"] for r in load_index(tmp_path)) == expected  # none lost, no extra run
    ran = [r["run_id"] for r in read_jsonl(log)]
    assert len(ran) == len(set(ran)) and set(ran) <= set(expected)  # no finished run ran again


def _expected_ids(n: int) -> list[str]:
    study = study_from_dict({"name": "kill", "grid": {"model.kwargs.width": list(range(1, n + 1))}})
    return [c.run_id for c in expand(study)]


