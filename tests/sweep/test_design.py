"""`check_design` / `robustperf study --check-design`: a grid that cannot identify an exponent is caught before training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from robustperf.cli.app import app
from robustperf.sweep import study_from_dict
from robustperf.sweep.design import check_axes, check_design

runner = CliRunner()


def _grid(n_values, d_values):
    nn, dd = np.meshgrid(n_values, d_values)
    return nn.ravel(), dd.ravel()


def test_rules_per_axis_name_the_exponent_and_the_fix() -> None:
    n, d = _grid([1e3, 1e4, 1e5], [1e4, 1.1e4, 1.3e4])  # D spans 1.3x
    issues = check_axes(n, d)
    assert [(i.axis, i.exponent, i.severity) for i in issues] == [("D", "beta", "error")]
    assert "1.3x" in issues[0].message and "decade" in issues[0].fix
    n, d = _grid([1e3, 1e4], [1e3, 1e4, 1e5])  # 2 model sizes
    assert [(i.axis, i.severity) for i in check_axes(n, d)] == [("N", "error")]
    n, d = _grid([1e3, 3e3, 6e3], [1e3, 1e4, 1e5])  # N spans 6x: identifiable but loose
    assert [(i.axis, i.severity) for i in check_axes(n, d)] == [("N", "warning")]
    assert check_axes(*_grid([1e3, 1e4, 1e5], [1e3, 1e4, 1e5])) == []
    diagonal = np.array([1e3, 1e4, 1e5, 1e6])
    assert any(i.axis == "N,D" for i in check_axes(diagonal, 3 * diagonal))  # N and D never crossed


def _study(tmp_path: Path, widths, n_trains, epochs=(2,)) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({
        "name": "design", "base": {"name": "design", "model": {"name": "tiny_cnn"}, "optim": {"epochs": 2}},
        "grid": {"model.kwargs.width": list(widths), "data.n_train": list(n_trains), "optim.epochs": list(epochs)},
        "runs_dir": str(tmp_path / "runs")}))
    return path


def test_check_design_reads_n_and_d_from_the_planned_runs(tmp_path: Path) -> None:
    from robustperf.sweep import load_study

    study = load_study(_study(tmp_path, [4, 16, 64], [100, 110, 120]))
    report = check_design(study)
    assert report.n_runs == 9 and len(report.values["N"]) == 3
    assert report.values["D"] == [200.0, 220.0, 240.0]  # n_train x epochs
    assert not report.ok and any("beta" in line and "1.2x" in line for line in report.lines())
    good = check_design(study_from_dict({"name": "g", "base": {"name": "g", "optim": {"epochs": 2}},
                                         "grid": {"model.kwargs.width": [4, 16, 64], "data.n_train": [100, 1000],
                                                  "optim.epochs": [1, 2, 4]}}))
    assert good.ok, good.lines()


def test_cli_check_design_exits_before_training(tmp_path: Path) -> None:
    bad = _study(tmp_path, [4, 16, 64], [100, 110, 120])
    res = runner.invoke(app, ["study", str(bad), "--check-design"])
    assert res.exit_code == 1 and "beta" in res.output and "Fix:" in res.output
    assert not (tmp_path / "runs").exists()  # nothing trained, nothing written
    good = tmp_path / "good"
    good.mkdir()
    res = runner.invoke(app, ["study", str(_study(good, [4, 16, 64], [100, 1000], (1, 2, 4))), "--check-design"])
    assert res.exit_code == 0, res.output
    assert "passes the checks" in res.output


@pytest.mark.parametrize("flag", ["--plan"])
def test_plan_with_check_design_warns_and_still_writes_the_manifest(tmp_path: Path, flag: str) -> None:
    bad = _study(tmp_path, [4, 16, 64], [100, 110, 120])
    res = runner.invoke(app, ["study", str(bad), flag, "--check-design"])
    assert res.exit_code == 0 and "error:" in res.output and "manifest:" in res.output
