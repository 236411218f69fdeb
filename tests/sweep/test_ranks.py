"""A run as one job of 2 gloo ranks (torchrun here; srun in test_slurm.py): rank 0 alone owns the run, both
ranks train, the study evaluation is split across them, one record is written, and reruns are skipped."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from robustperf.config import RunConfig
from robustperf.store import RunDir
from robustperf.store import checkpoint as ckpt
from robustperf.sweep.manifest import write_manifest
from robustperf.sweep.run import run_one, world_size_from_env

CFG = {
    "data.dataset": "digits", "data.n_train": 128, "data.batch_size": 32, "model.name": "tiny_cnn",
    "model.kwargs": {"width": 8}, "method.attack.eps": 0.1, "method.attack.step_size": 0.04,
    "method.attack.n_steps": 2, "optim.epochs": 2, "optim.lr": 0.05, "eval.n_examples": 32,
    "eval.attack.n_steps": 3, "runtime.device": "cpu", "runtime.progress": False, "cost.energy_meter": "fake",
    "runtime.log_every_n_steps": 2,
}
EVALUATE = {"attacks": ["apgd-ce"], "which": "final", "n_examples": 48, "batch_size": 8}


def torchrun(manifest: Path, nproc: int, timeout: float = 240) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_JOB_ID"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                           "-m", "robustperf", "run-one", "--manifest", str(manifest), "--index", "0", "--json"],
                          env=env, capture_output=True, text=True, timeout=timeout)
    summaries = _json_objects(proc.stdout)
    assert len(summaries) == nproc, proc.stdout[-2000:] + proc.stderr[-3000:]
    return sorted(summaries, key=lambda s: s.get("rank", 0))


def _json_objects(text: str) -> list[dict]:
    """Every JSON object printed: the ranks share one stdout, so two summaries can land on one line."""
    decoder, found, i = json.JSONDecoder(), [], text.find("{")
    while i != -1:
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            i = text.find("{", i + 1)
            continue
        if isinstance(obj, dict) and "run_id" in obj:
            found.append(obj)
        i = text.find("{", end)
    return found


def test_world_size_is_read_from_the_launcher_without_torch() -> None:
    assert world_size_from_env({}) == 1
    assert world_size_from_env({"WORLD_SIZE": "4", "RANK": "1"}) == 4
    assert world_size_from_env({"SLURM_NTASKS": "2", "SLURM_PROCID": "0"}) == 2
    assert world_size_from_env({"SLURM_NTASKS": "2"}) == 1  # an allocation, not a task of a step


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunConfig, list[dict]]:
    root = tmp_path_factory.mktemp("ranks")
    cfg = RunConfig().with_overrides(CFG)
    (root / "runs").mkdir()
    # run-one refuses a manifest that does not live in (or up to two levels under) its runs directory
    manifest = write_manifest(root / "runs" / "manifest.jsonl", functools.partial(run_one, evaluate=EVALUATE),
                              [cfg.resolved()], root / "runs")
    return manifest, cfg, torchrun(manifest, 2)


def test_two_ranks_train_one_run_and_split_its_evaluation(two_rank_run) -> None:
    manifest, cfg, (rank0, rank1) = two_rank_run
    assert rank0["status"] == rank1["status"] == "finished", (rank0, rank1)
    assert (rank0["rank"], rank1["rank"], rank0["world_size"]) == (0, 1, 2)
    assert rank0["evaluation"]["n_processes"] == 2
    assert rank0["evaluation"]["robust_acc"] == rank1["evaluation"]["robust_acc"]  # the merged verdicts
    rd = RunDir.for_run(manifest.parent, cfg.run_id)
    rec = rd.read_record()
    assert rec.status == "finished" and rec.provenance["world_size"] == 2
    assert rec.evaluations[f"study_final_apgd-ce_{EVALUATE['n_examples']}"]["robust_acc"] == rank0["evaluation"]["robust_acc"]
    assert [p.name for p in manifest.parent.iterdir() if p.is_dir()] == [cfg.run_id]  # one run, one record
    # the same evaluation of the same checkpoint in one process gives the verdicts the two ranks merged
    from robustperf.sweep.run import _evaluate
    from robustperf.sweep.study import EvaluateSpec

    again = _evaluate(rd, EvaluateSpec.model_validate({**EVALUATE, "seed": 0}))
    assert again["robust_acc"] == rank0["evaluation"]["robust_acc"] and again["n_processes"] == 1


def test_a_finished_two_rank_run_is_skipped_by_every_rank(two_rank_run) -> None:
    manifest, _, _ = two_rank_run
    rank0, rank1 = torchrun(manifest, 2)
    assert rank0["status"] == "skipped" and rank1["status"] == "skipped"


@pytest.mark.slow  # the same comparison runs through srun in test_slurm.py
def test_two_rank_weights_equal_a_two_rank_torchrun_train(two_rank_run, tmp_path: Path) -> None:
    manifest, cfg, _ = two_rank_run
    script = tmp_path / "train.py"
    script.write_text("import sys\nfrom robustperf.config import RunConfig\nfrom robustperf.training import train\n"
                      "train(RunConfig.model_validate_json(open(sys.argv[1]).read()), sys.argv[2])\n")
    (tmp_path / "cfg.json").write_text(cfg.model_dump_json())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           str(script), str(tmp_path / "cfg.json"), str(tmp_path / "runs")], env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = ckpt.load_checkpoint(RunDir.for_run(manifest.parent, cfg.run_id).checkpoints / ckpt.LAST)["model"]
    b = ckpt.load_checkpoint(RunDir.for_run(tmp_path / "runs", cfg.run_id).checkpoints / ckpt.LAST)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_resume_with_another_world_size_fails_with_a_clear_reason(tmp_path: Path) -> None:
    from robustperf.training import train

    cfg = RunConfig().with_overrides(CFG)

    class Stop(BaseException):
        pass

    def stop(event) -> None:
        if event.kind == "step" and event.step == 3:
            raise Stop

    with pytest.raises(Stop):  # a 1-process run that stopped with a step checkpoint
        train(cfg, tmp_path / "runs", callback=stop, checkpoint_every_n_steps=2)
    manifest = write_manifest(tmp_path / "runs" / "manifest.jsonl", run_one, [cfg.resolved()], tmp_path / "runs")
    rank0, _ = torchrun(manifest, 2)
    assert rank0["status"] == "failed" and "written with 1 processes, this job has 2" in rank0["failure_reason"]


@pytest.mark.slow
def test_a_run_held_by_another_process_leaves_every_rank_locked(tmp_path: Path) -> None:
    """Rank 0 alone tries to own the run (`owned_run`); refused, it tells the other ranks, and nothing is written."""
    cfg = RunConfig().with_overrides(CFG)
    manifest = write_manifest(tmp_path / "runs" / "manifest.jsonl", run_one, [cfg.resolved()], tmp_path / "runs")
    run_dir = RunDir.for_run(tmp_path / "runs", cfg.run_id).path
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from robustperf.store.lock import RunLock; "
        f"RunLock({str(run_dir)!r}).acquire(); print('held', flush=True); time.sleep(120)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        rank0, rank1 = torchrun(manifest, 2)
        assert rank0["status"] == "locked" and "is being" in rank0["failure_reason"]
        assert rank1["status"] == "locked" and rank1["failure_reason"] == "rank 0 says: locked"
        assert not (run_dir / "result.json").exists()
    finally:
        holder.kill()
        holder.wait()
