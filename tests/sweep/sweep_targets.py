"""Picklable target functions for executor tests: real CPU work that writes a real run directory.

They stand in for `run_one` only where the test is about the executor (parallelism, idempotency,
kills), not about training; the training path is tested with `run_one` itself.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from robustperf.config import config_from_dict
from robustperf.store import RunDir, append_jsonl, utcnow

# a real training run small enough for a test: digits, a 2-channel CNN, one epoch of PGD-1 AT
TINY = {
    "name": "tiny",
    "data": {"dataset": "digits", "n_train": 120, "n_test": 60, "batch_size": 60},
    "model": {"name": "tiny_cnn", "kwargs": {"width": 2}},
    "method": {"name": "pgd_at", "attack": {"eps": 0.1, "step_size": 0.05, "n_steps": 1}},
    "optim": {"epochs": 1, "lr": 0.05},
    "eval": {"n_examples": 40, "attack": {"eps": 0.1, "step_size": 0.05, "n_steps": 2, "loss": "cw"}},
    "cost": {"energy_meter": "none"},
    "runtime": {"device": "cpu", "progress": False},
}


def _spin(n_loops: int) -> int:
    """A fixed amount of CPU work (not sleep), so running two at once is faster only on two cores."""
    return sum(sum(i * i for i in range(2000)) for _ in range(n_loops))


def spin_on_signal(go: Any, ends: Any, n_loops: int) -> None:
    """Wait for `go` (a multiprocessing Event), spin, and put the wall-clock end time on `ends`."""
    go.wait()
    _spin(n_loops)
    ends.put(time.time())


def busy_run(config: dict[str, Any], runs_dir: str, n_loops: int = 4000) -> dict[str, Any]:
    """Idempotent: a finished run is skipped; otherwise spin, then record the run as finished."""
    cfg = config_from_dict(config)
    rd = RunDir.for_run(runs_dir, cfg.run_id)
    if rd.is_finished():
        return {"run_id": cfg.run_id, "status": "skipped"}
    rd.write_config(cfg.resolved())
    rd.update_record(status="running", started_at=utcnow())
    t0, start = time.time(), time.perf_counter()
    _spin(n_loops)
    elapsed = time.perf_counter() - start
    rd.update_record(status="finished", ended_at=utcnow(),
                     final={"seed": cfg.runtime.seed, "width": cfg.model.kwargs.get("width")},
                     cost={"seconds": elapsed})
    # logged after the record: a kill in between may drop a log line but never runs a finished run twice
    append_jsonl(Path(runs_dir) / "executions.jsonl",
                 {"run_id": cfg.run_id, "pid": os.getpid(), "slot": os.environ.get("ROBUSTPERF_WORKER_SLOT"),
                  "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
                  "omp_threads": os.environ.get("OMP_NUM_THREADS"), "start": t0, "end": time.time()})
    return {"run_id": cfg.run_id, "status": "finished", "seconds": elapsed}


def failing_run(config: dict[str, Any], runs_dir: str) -> dict[str, Any]:
    """Crashes the worker process for width 13 (a hard exit, as an OOM kill would)."""
    cfg = config_from_dict(config)
    if cfg.model.kwargs.get("width") == 13:
        os._exit(3)
    return busy_run(config, runs_dir, n_loops=50)


def interrupted_once(config: dict[str, Any], runs_dir: str) -> dict[str, Any]:
    """The first call of a run ends "interrupted" (as a preempted worker's would); later calls finish it."""
    cfg = config_from_dict(config)
    marker = Path(runs_dir) / f"{cfg.run_id}.stopped-once"
    if not marker.exists():
        marker.write_text("1")
        return {"run_id": cfg.run_id, "status": "interrupted", "failure_reason": "SIGUSR2 at step 3"}
    return busy_run(config, runs_dir, n_loops=20)
