"""DDP on CPU: two gloo processes launched by torchrun train one run; weights agree, rank 0 writes the record."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from robustperf.config import RunConfig
from robustperf.store import RunDir

SCRIPT = textwrap.dedent(
    """
    import os, sys, torch
    from robustperf.config import RunConfig
    from robustperf.training import train
    cfg = RunConfig.model_validate_json(open(sys.argv[1]).read())
    def callback(event):
        if event.kind == "end":
            state = {k: v.detach().clone() for k, v in event.model.state_dict().items()}
            torch.save(state, os.path.join(sys.argv[3], f"rank{os.environ['RANK']}.pt"))
    train(cfg, sys.argv[2], callback=callback)
    """
)


def test_two_gloo_ranks_end_with_equal_weights(tmp_path: Path) -> None:
    cfg = RunConfig().with_overrides({
        "data.dataset": "digits", "data.n_train": 256, "data.batch_size": 32, "model.name": "tiny_cnn",
        "model.kwargs": {"width": 8}, "method.name": "trades", "method.attack.eps": 0.1,
        "method.attack.step_size": 0.04, "method.attack.n_steps": 2, "optim.epochs": 2, "optim.lr": 0.05,
        "eval.n_examples": 64, "eval.attack.n_steps": 3, "runtime.device": "cpu", "runtime.progress": False,
        "cost.energy_meter": "fake", "runtime.log_every_n_steps": 2,
    })
    (tmp_path / "cfg.json").write_text(cfg.model_dump_json())
    (tmp_path / "run.py").write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_NTASKS", "SLURM_PROCID"):
        env.pop(key, None)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(tmp_path / "run.py"), str(tmp_path / "cfg.json"), str(tmp_path / "runs"), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    w0, w1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert w0.keys() == w1.keys()
    for key in w0:
        assert torch.equal(w0[key], w1[key]), key
    rd = RunDir.for_run(tmp_path / "runs", cfg.run_id)
    rec = rd.read_record()
    assert rec.status == "finished" and rec.provenance["world_size"] == 2
    assert rec.final["samples_seen"] == 2 * 256  # both shards counted
    assert rec.cost["n_gpus"] == 2
    ckpt = torch.load(rd.checkpoints / "last.pt", weights_only=True)
    assert len(ckpt["per_rank"]) == 2  # each rank's loader/attack RNG state, for an exact resume
    assert [r["step"] for r in rd.read_metrics() if r["kind"] == "train"] == [2, 4, 6, 8]
