"""`runs leaderboard-entry RUN`: a robustperf run's model_info JSON, the same schema as the zoo's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from typer.testing import CliRunner
from zoo_helpers import CHEAP, check_with_robustbench

from robustperf.cli.app import app
from robustperf.store import RunDir
from robustperf.sweep import run_one

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sweep"))
from sweep_targets import TINY  # noqa: E402


def test_leaderboard_entry_of_a_trained_run(tmp_path: Path) -> None:
    out = run_one(TINY, tmp_path / "runs")
    assert out["status"] == "finished"
    rd = RunDir(Path(out["run_dir"]))
    result = CliRunner().invoke(app, ["runs", "leaderboard-entry", str(rd.path), "--out", str(tmp_path / "info"),
                                      "--n-examples", "20", "--energy-meter", "estimate", "--watts", "10",
                                      "--venue", "robustperf 2026",
                                      *[f"--set-attack={s}.{k}={v}" for s, kv in CHEAP.items() for k, v in kv.items()]])
    assert result.exit_code == 0, result.output
    path = tmp_path / "info" / "digits" / "Linf" / f"{rd.run_id}.json"
    info = json.loads(path.read_text())
    record = rd.read_record()
    assert info["architecture"] == "tiny_cnn(width=2)" and info["eps"] == 0.1 and info["dataset"] == "digits"
    assert info["cost"]["train"]["train_flops"] == record.cost["train_flops"]
    assert info["cost"]["eval"]["n_examples"] == 20 and info["cost"]["eval"]["flops"] > 0
    assert info["cost"]["n_params"] == record.final["n_params"] and info["cost"]["run_id"] == rd.run_id
    assert 0 <= float(info["autoattack_acc"]) <= float(info["clean_acc"]) <= 100
    check_with_robustbench(info)


def test_leaderboard_entry_refuses_a_non_run(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["runs", "leaderboard-entry", str(tmp_path)])
    assert result.exit_code == 2 and "is not a run directory" in result.output
