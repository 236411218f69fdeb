"""A run of 2 gloo ranks on a local Ray cluster: a placement group of one bundle per rank, rank 0 owns the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from robustperf.config import RunConfig
from robustperf.store import RunDir
from robustperf.sweep import ExecutorSpec, create_executor
from robustperf.sweep.run import run_one

pytestmark = pytest.mark.slow  # starts a local Ray cluster (tens of seconds)

CFG = {
    "data.dataset": "digits", "data.n_train": 128, "data.batch_size": 32, "model.name": "tiny_cnn",
    "model.kwargs": {"width": 8}, "method.attack.eps": 0.1, "method.attack.step_size": 0.04,
    "method.attack.n_steps": 2, "optim.epochs": 1, "optim.lr": 0.05, "eval.n_examples": 32,
    "eval.attack.n_steps": 3, "runtime.device": "cpu", "runtime.progress": False, "cost.energy_meter": "fake",
}


def test_ray_runs_one_run_as_two_ranks(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    cfg = RunConfig().with_overrides(CFG)
    spec = ExecutorSpec(name="ray", gpus_per_run=0, procs_per_run=2, workers=2)
    with create_executor("ray", spec) as ex:
        result = ex.run(run_one, [cfg.resolved()], tmp_path)
    assert result.count("finished") == 1, result.results
    summary = result.results[0]
    assert summary["rank"] == 0 and summary["world_size"] == 2
    rec = RunDir.for_run(tmp_path, cfg.run_id).read_record()
    assert rec.status == "finished" and rec.provenance["world_size"] == 2
