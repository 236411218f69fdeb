"""Free AT (m optimiser steps per minibatch, delta per rank) and ensembles (k member forwards before one
backward) under DDP: two gloo ranks launched by torchrun end with the same weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from robustperf.config import RunConfig
from robustperf.store import RunDir

from .test_ddp import SCRIPT

CASES = {
    "free_at": {"method.name": "free_at", "method.kwargs": {"replays": 2}},
    "ensemble": {"method.name": "ensemble", "model.name": "ensemble",
                 "model.kwargs": {"member": "tiny_cnn", "members": 2, "width": 4}},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_two_gloo_ranks_agree(tmp_path: Path, name: str) -> None:
    cfg = RunConfig().with_overrides({
        "data.dataset": "digits", "data.n_train": 128, "data.batch_size": 32, "model.name": "tiny_cnn",
        "model.kwargs": {"width": 4}, "method.attack.eps": 0.1, "method.attack.step_size": 0.04,
        "method.attack.n_steps": 2, "optim.epochs": 2, "optim.lr": 0.05, "eval.n_examples": 32,
        "eval.attack.n_steps": 2, "runtime.device": "cpu", "runtime.progress": False, "cost.energy_meter": "fake",
        **CASES[name],
    })
    (tmp_path / "cfg.json").write_text(cfg.model_dump_json())
    (tmp_path / "run.py").write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_NTASKS", "SLURM_PROCID"):
        env.pop(key, None)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(tmp_path / "run.py"), str(tmp_path / "cfg.json"), str(tmp_path / "runs"), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    w0, w1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for key in w0:
        assert torch.equal(w0[key], w1[key]), key
    rec = RunDir.for_run(tmp_path / "runs", cfg.run_id).read_record()
    assert rec.status == "finished"
