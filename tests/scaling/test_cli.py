"""`robustperf fit` and `robustperf forecast` end to end on generated data and run records."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from robustperf.cli.app import app
from robustperf.scaling import create_law, load_fit
from robustperf.store import RunDir, RunRecord

runner = CliRunner()


@pytest.fixture(scope="module")
def a2_csv(tmp_path_factory):
    truth = create_law("bartoldson2024_approach2")
    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame({"params": 10 ** rng.uniform(6.5, 8.5, n), "samples": 10 ** rng.uniform(6.5, 8.5, n),
                          "fid": rng.choice([1.65, 1.65, 5.0, 10.0], n)})
    frame["adv_loss"] = truth(frame.params, frame.samples, frame.fid) * np.exp(rng.normal(0, 0.002, n))
    path = tmp_path_factory.mktemp("data") / "runs.csv"
    frame.to_csv(path, index=False)
    return path


def test_fit_then_forecast_from_the_saved_fit(a2_csv, tmp_path):
    out = tmp_path / "fit.json"
    res = runner.invoke(app, ["fit", str(a2_csv), "--law", "approach2", "--n", "params", "--d", "samples",
                              "--loss", "adv_loss", "--fid", "fid", "--bootstrap", "30", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "status: ok" in res.output and "alpha" in res.output
    fit = load_fit(out)
    assert fit.law == "approach2" and fit.law_kwargs["fid_ref"] == 1.65
    assert fit.params["alpha"] == pytest.approx(0.244, abs=0.03)
    assert len(fit.bootstrap.samples["A"]) + fit.bootstrap.n_failed == 30
    res = runner.invoke(app, ["forecast", "--law", str(out), "--fid", "1.65", "--flops", "1e21", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["accuracy"]["low"] <= data["accuracy"]["value"] <= data["accuracy"]["high"]
    assert data["N"]["value"] == pytest.approx(1.63e8, rel=0.5)


def test_forecast_published_law_target_and_unreachable():
    res = runner.invoke(app, ["forecast", "--law", "bartoldson2024_approach2", "--fid", "1.65",
                              "--target-accuracy", "0.735", "--gpu", "a100", "--mfu", "0.3", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["flops"]["value"] == pytest.approx(1e21, rel=0.05)
    assert data["cost"]["gpu_hours"]["value"] == pytest.approx(data["flops"]["value"] / (312e12 * 0.3) / 3600)
    assert "A100" in data["constants"]["gpu"]["value"]
    res = runner.invoke(app, ["forecast", "--law", "bartoldson2024_approach2", "--target-accuracy", "0.95"])
    assert res.exit_code == 0 and "unreachable: ceiling is accuracy 0.89652" in res.output.replace("\n", "")


def test_cli_errors_name_the_fix(a2_csv):
    res = runner.invoke(app, ["fit", str(a2_csv), "--law", "approach2"])  # default store columns absent
    assert res.exit_code == 2 and "not in the table" in res.output
    res = runner.invoke(app, ["fit", str(a2_csv), "--law", "approach9"])
    assert res.exit_code == 2 and "choose one of" in res.output
    res = runner.invoke(app, ["forecast", "--law", "approach_2_published", "--flops", "1e20"])
    assert res.exit_code == 2 and "Available" in res.output
    res = runner.invoke(app, ["forecast", "--law", "bartoldson2024_approach2"])
    assert res.exit_code == 2 and "exactly one" in res.output


def test_fit_power_law_on_a_runs_directory(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(40):
        flops = float(10 ** rng.uniform(15, 19))
        rd = RunDir(tmp_path / f"run{i:02d}")
        rd.write_config({"model": {"name": "tiny_cnn"}, "data": {"synthetic_fid": None}})
        rd.write_record(RunRecord(run_id=f"run{i:02d}", status="finished",
                                  final={"robust_acc": 0.3 * (flops / 1e15) ** 0.05 * rng.uniform(0.8, 1.0)},
                                  cost={"train_flops": flops}))
    res = runner.invoke(app, ["fit", str(tmp_path), "--law", "power_law", "--bins", "8", "--out",
                              str(tmp_path / "pl.json")])
    assert res.exit_code == 0, res.output
    fit = load_fit(tmp_path / "pl.json")
    assert fit.n_points == 8 and fit.params["alpha"] == pytest.approx(0.05, abs=0.02)


def test_approach1_from_training_curves_in_run_directories(tmp_path):
    from robustperf.scaling import load_curves

    law = create_law("chinchilla", A=400.0, B=400.0, E=1.7, alpha=0.34, beta=0.28)
    k = 6.0  # cost.flops_per_sample / n_params
    for i, n_params in enumerate(np.geomspace(1e6, 1e9, 12)):
        rd = RunDir(tmp_path / f"run{i:02d}")
        rd.write_config({"data": {"synthetic_fid": 2.0}})
        for epoch, d in enumerate(np.geomspace(1e6, 1e10, 30)):
            rd.append_metrics({"kind": "eval", "epoch": epoch, "samples_seen": float(d),
                               "adv_loss": float(law(n_params, d)), "n_params": float(n_params)})
        rd.append_metrics({"kind": "event", "event": "resumed"})
        rd.write_record(RunRecord(run_id=f"run{i:02d}", status="finished", final={"n_params": float(n_params)},
                                  cost={"flops_per_sample": k * n_params}))
    curves = load_curves(tmp_path)
    assert len(curves) == 12 * 30 and set(curves.fid) == {2.0}
    assert curves.flops.iloc[0] == pytest.approx(curves.samples_seen.iloc[0] * k * curves.n_params.iloc[0])
    res = runner.invoke(app, ["fit", str(tmp_path), "--law", "approach1", "--out", str(tmp_path / "a1.json")])
    assert res.exit_code == 0, res.output
    fit = load_fit(tmp_path / "a1.json")
    # 12 model sizes quantise N*; the true exponent is beta / (alpha + beta) = 0.452.
    assert fit.params["a"] == pytest.approx(0.452, abs=0.05)
