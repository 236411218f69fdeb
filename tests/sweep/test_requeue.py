"""Preemption comes back by itself: the study retries interrupted runs, `--resubmit` finds the unfinished
tasks of a planned array, and a Slurm task asks to be requeued (the real Slurm cases: test_slurm.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from robustperf.sweep import ExecutorSpec, create_executor, expand, run_study, study_from_dict
from robustperf.sweep.requeue import slurm_job_to_requeue
from robustperf.sweep.resubmit import array_ranges, resubmit
from robustperf.sweep.runner import _retry_interrupted

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import sweep_targets  # noqa: E402


def test_the_study_retries_an_interrupted_run_until_it_finishes(tmp_path: Path) -> None:
    study = study_from_dict({"name": "rq", "base": sweep_targets.TINY, "grid": {"model.kwargs.width": [1, 2]}})
    configs = [c.resolved() for c in expand(study)]
    ex = create_executor("local", ExecutorSpec(name="local", workers=2, gpus_per_run=0))
    first = ex.run(sweep_targets.interrupted_once, configs, tmp_path)
    assert first.count("interrupted") == 2
    again = _retry_interrupted(ex, sweep_targets.interrupted_once, configs, tmp_path, first, retries=2)
    assert again.count("finished") == 2 and again.wall_seconds >= first.wall_seconds
    none = _retry_interrupted(ex, sweep_targets.interrupted_once, configs, tmp_path, first, retries=0)
    assert none.count("interrupted") == 2  # max_retries: 0 leaves them to --resubmit


def test_resubmit_lists_only_the_unfinished_tasks(tmp_path: Path) -> None:
    study = study_from_dict({"name": "rs", "base": sweep_targets.TINY, "grid": {"model.kwargs.width": [1, 2, 3, 4]},
                             "executor": {"array_parallelism": 3}})
    with pytest.raises(ValueError, match="plan it first"):
        resubmit(study, tmp_path, submit=False)
    run_study(study, tmp_path, plan=True)
    configs = [c.resolved() for c in expand(study)]
    for i in (0, 2):  # two of the four tasks finished before the array timed out
        sweep_targets.busy_run(configs[i], str(tmp_path), n_loops=5)
    out = resubmit(study, tmp_path, submit=False)
    assert out.unfinished == (1, 3) and out.array == "1,3%3" and out.job_id is None
    assert out.command[:4] == ("sbatch", "--parsable", "--array=1,3%3", "--time=04:00:00")
    assert out.command[4].endswith("submit.sbatch")
    for i in (1, 3):
        sweep_targets.busy_run(configs[i], str(tmp_path), n_loops=5)
    assert resubmit(study, tmp_path, submit=False).unfinished == ()


def test_array_ranges_and_the_task_a_slurm_requeue_names() -> None:
    assert array_ranges([5, 0, 1, 2, 7, 8]) == "0-2,5,7-8" and array_ranges([4]) == "4"
    env = {"SLURM_JOB_ID": "107", "SLURM_ARRAY_JOB_ID": "100", "SLURM_ARRAY_TASK_ID": "7", "SLURM_PROCID": "0"}
    assert slurm_job_to_requeue(env) == "100_7"
    assert slurm_job_to_requeue({**env, "SLURM_PROCID": "1"}) is None  # rank 0 alone asks
    assert slurm_job_to_requeue({"SLURM_JOB_ID": "9"}) == "9"
    assert slurm_job_to_requeue({**env, "ROBUSTPERF_REQUEUE": "0"}) is None and slurm_job_to_requeue({}) is None


def test_cli_resubmit_without_a_plan_names_the_fix(tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from robustperf.cli.app import app

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "cli_rs", "base": sweep_targets.TINY}))
    out = CliRunner().invoke(app, ["study", str(path), "--runs-dir", str(tmp_path / "runs"), "--resubmit"])
    assert out.exit_code != 0 and "plan it first" in " ".join(out.output.split())
