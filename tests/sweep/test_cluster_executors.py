"""Manifest + array index, submitit and Ray executors, and `run_study --plan`."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from robustperf.store import load_index, read_jsonl
from robustperf.sweep import (
    ExecutorSpec,
    create_executor,
    expand,
    read_manifest,
    run_study,
    study_from_dict,
)
from robustperf.sweep.manifest import array_index_from_env

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # spawn workers inherit sys.path, so they can import the targets
import sweep_targets  # noqa: E402

ROOT = HERE.parents[1]


@pytest.fixture(autouse=True)
def _test_entry_points(monkeypatch) -> None:
    """run-one calls only registered entry points; the test targets are registered the way a deployment would."""
    monkeypatch.setenv("ROBUSTPERF_RUN_ENTRY_POINTS", "sweep_targets:busy_run,sweep_targets:failing_run")


def _configs(widths: list[int], seeds: tuple[int, ...] = (0,)) -> list[dict]:
    study = study_from_dict({"name": "exec", "base": {"model": {"name": "tiny_cnn"}},
                             "grid": {"model.kwargs.width": widths}, "seeds": list(seeds)})
    return [c.resolved() for c in expand(study)]


def _finished_ids(runs_dir: Path) -> list[str]:
    return sorted(r["run_id"] for r in load_index(runs_dir) if r["status"] == "finished")


def _index_signature(runs_dir: Path) -> list[tuple]:
    """What must match between executors: run ids, statuses and results (not timings or paths)."""
    return sorted((r["run_id"], r["status"], r.get("final.seed"), r.get("final.width")) for r in load_index(runs_dir))


def test_manifest_indices_in_separate_processes_match_the_local_pool(tmp_path: Path) -> None:
    configs = _configs([1, 2], seeds=(0, 1))
    fn = functools.partial(sweep_targets.busy_run, n_loops=50)
    with create_executor("local", workers=2) as ex:
        ex.run(fn, configs, tmp_path / "local")

    spec = ExecutorSpec(name="manifest", workers=2, submit=False)
    ex = create_executor("manifest", spec)
    ex.run(fn, configs, tmp_path / "manifest")
    manifest = ex.manifest_path
    assert len(read_manifest(manifest)) == 4
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    for i in range(4):  # each index in its own process, the way a scheduler array runs them
        variable = ("SLURM_ARRAY_TASK_ID", str(i)) if i % 2 else ("LSB_JOBINDEX", str(i + 1))  # LSF is 1-based
        cmd = [sys.executable, "-m", "robustperf", "run-one", "--manifest", str(manifest), "--json"]
        out = subprocess.run(cmd, env={**env, variable[0]: variable[1]}, capture_output=True, text=True, check=True)
        assert json.loads(out.stdout.strip().splitlines()[-1])["status"] == "finished"
    assert _index_signature(tmp_path / "manifest") == _index_signature(tmp_path / "local")

    sbatch = (manifest.parent / "submit.sbatch").read_text()
    assert "#SBATCH --array=0-3%64" in sbatch and "run-one --manifest" in sbatch
    assert "#SBATCH --signal=B:USR1@120" in sbatch and "\nexec " in sbatch  # the signal reaches the run itself
    assert "#BSUB -J 'study[1-4]%64'" in (manifest.parent / "submit.bsub").read_text()
    assert "#PBS -J 0-3" in (manifest.parent / "submit.qsub").read_text()


def test_manifest_executor_runs_each_index_as_a_subprocess(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    configs = _configs([1, 2])
    with create_executor("manifest", workers=2) as ex:
        result = ex.run(functools.partial(sweep_targets.busy_run, n_loops=50), configs, tmp_path)
    assert result.count("finished") == 2
    assert len({r["pid"] for r in read_jsonl(tmp_path / "executions.jsonl")}) == 2


def test_array_index_variables() -> None:
    assert array_index_from_env({"SLURM_ARRAY_TASK_ID": "4"}) == 4
    assert array_index_from_env({"LSB_JOBINDEX": "1"}) == 0
    assert array_index_from_env({"PBS_ARRAY_INDEX": "2"}) == 2
    with pytest.raises(ValueError, match="--index"):
        array_index_from_env({})


def test_submitit_local_executor_completes_a_small_study(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("submitit")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    configs = _configs([1, 2, 3])
    spec = ExecutorSpec(name="submitit", cluster="local", timeout_min=5, gpus_per_run=0)
    with create_executor("submitit", spec) as ex:
        result = ex.run(functools.partial(sweep_targets.busy_run, n_loops=50), configs, tmp_path)
        assert len(ex.jobs) == 3
    assert result.count("finished") == 3
    assert _finished_ids(tmp_path) == sorted(r["run_id"] for r in result.results)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install 'robustperf[ray]')")
def test_ray_local_completes_a_small_study(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    configs = _configs([1, 2])
    spec = ExecutorSpec(name="ray", workers=2, gpus_per_run=0)
    with create_executor("ray", spec) as ex:
        result = ex.run(functools.partial(sweep_targets.busy_run, n_loops=50), configs, tmp_path)
    assert result.count("finished") == 2


def test_run_study_plan_writes_scripts_and_runs_nothing(tmp_path: Path) -> None:
    study = study_from_dict({"name": "plan", "grid": {"model.kwargs.width": [2, 4]}, "seeds": [0, 1]})
    result = run_study(study, tmp_path, plan=True)
    assert result.execution is None and result.manifest_path is not None
    entries = read_manifest(result.manifest_path)
    assert [e["run_id"] for e in entries] == list(result.run_ids)
    assert entries[0]["fn"] == "robustperf.sweep.run:run_one"
    assert not any(p.is_dir() and (p / "config.json").exists() for p in tmp_path.iterdir())
    assert (tmp_path / "studies" / "plan.json").exists()


def test_cli_plan_and_run_one_errors(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from robustperf.cli.app import app

    study = tmp_path / "s.yaml"
    study.write_text(f"name: cli\ngrid: {{model.kwargs.width: [2, 4]}}\nruns_dir: {tmp_path / 'runs'}\n")
    runner = CliRunner()
    result = runner.invoke(app, ["study", str(study), "--plan"])
    assert result.exit_code == 0, result.output
    manifest = tmp_path / "runs" / "manifests" / "cli" / "manifest.jsonl"
    assert len(read_manifest(manifest)) == 2
    bad = runner.invoke(app, ["run-one", "--manifest", str(manifest), "--index", "7"], env={"SLURM_ARRAY_TASK_ID": ""})
    assert bad.exit_code == 2 and "outside the manifest's 0..1" in bad.output
    missing = runner.invoke(app, ["run-one", "--manifest", str(tmp_path / "nope.jsonl"), "--index", "0"])
    assert missing.exit_code == 2 and "--plan" in missing.output


def test_submitit_task_requeues_itself_on_preemption(tmp_path: Path) -> None:
    submitit = pytest.importorskip("submitit")
    from robustperf.sweep.executors import RequeueableRun

    task = RequeueableRun(functools.partial(sweep_targets.busy_run, n_loops=10))
    config = _configs([7])[0]
    delayed = task.checkpoint(config, str(tmp_path))  # what submitit calls on SIGUSR2 / timeout
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert delayed.args == (config, str(tmp_path))
    assert delayed.result()["status"] == "finished"  # the requeued call runs the same (idempotent) run
    assert task(config, str(tmp_path))["status"] == "skipped"
