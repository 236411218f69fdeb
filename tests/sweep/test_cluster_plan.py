"""`study --plan` says what the cluster is asked for: array, GPU-hours, wall time, checkpoint storage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from robustperf.cli.app import app
from robustperf.sweep import expand, study_from_dict
from robustperf.sweep.cluster_plan import cluster_plan

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sweep_targets  # noqa: E402


def test_the_plan_numbers_follow_from_images_throughput_and_concurrency() -> None:
    study = study_from_dict({"name": "p", "base": sweep_targets.TINY, "grid": {"model.kwargs.width": [1, 2, 3, 4]},
                             "executor": {"array_parallelism": 2, "gpus_per_run": 2, "timeout_min": 60}})
    configs = expand(study)
    plan = cluster_plan(study, configs, throughput=0.1, cluster_gpus=64)
    images = 4 * 1 * 120  # 4 runs x 1 epoch x n_train 120
    assert plan.train_images == images and plan.gpu_hours == pytest.approx(images / 0.1 / 3600)
    assert plan.concurrent_gpus == 4  # throttle 2 x 2 GPUs per run, below the cluster's 64
    assert plan.wall_hours == pytest.approx(plan.gpu_hours / 4)
    assert plan.longest_run_hours == pytest.approx(120 / 0.1 / 2 / 3600) and plan.runs_over_timeout == 0
    assert plan.array == "0-3%2" and plan.checkpoint_bytes == 3 * 4 * 2 * plan.params_total  # no EMA: weights+momentum
    with pytest.raises(ValueError, match="--throughput"):
        cluster_plan(study, configs, throughput=0, cluster_gpus=8)


def test_cli_plan_prints_and_records_the_cluster_request(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "plan_cli", "base": sweep_targets.TINY,
                                    "grid": {"model.kwargs.width": [1, 2]}, "fit": {"surface": "none"}}))
    out = CliRunner().invoke(app, ["study", str(path), "--runs-dir", str(tmp_path / "runs"), "--plan",
                                   "--throughput", "50", "--cluster-gpus", "8"])
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "GPU-hours" in text and "checkpoint storage" in text and "--array=0-1%64" in text
    plan = json.loads((tmp_path / "runs" / "manifests" / "plan_cli" / "plan.json").read_text())
    assert plan["n_runs"] == 2 and plan["cluster"]["cluster_gpus"] == 8
    assert plan["cluster"]["throughput_img_per_s_per_gpu"] == 50
