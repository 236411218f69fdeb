"""`robustperf trends`, `robustperf plot KIND DATA` and `robustperf fit --law predictor` end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from robustperf.cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def zoo_csv(tmp_path_factory):
    rng = np.random.default_rng(0)
    rows = []
    for dataset, doubling in (("cifar10", 2.0), ("imagenet", 1.0)):
        year = rng.integers(2017, 2025, 50).astype(float)
        params = 10 ** (7 + math.log10(2) / doubling * (year - 2017) + rng.normal(0, 0.1, 50))
        acc = 100 * np.clip(0.4 + 0.04 * (year - 2017) + rng.normal(0, 0.03, 50), 0.01, 0.99)
        rows.append(pd.DataFrame({"dataset": dataset, "model_id": [f"{dataset}{i}" for i in range(50)],
                                  "year_in_id": year, "n_params_used_in_forward": params,
                                  "fwd_flops_per_image": params * 290, "autoattack_acc": acc}))
    path = tmp_path_factory.mktemp("zoo") / "leaderboard.csv"
    pd.concat(rows).to_csv(path, index=False)
    return path


def test_trends_prints_doubling_times_per_dataset_and_writes_figures(zoo_csv, tmp_path):
    result = runner.invoke(app, ["trends", str(zoo_csv), "--bootstrap", "100", "--out", str(tmp_path),
                                 "--target-year", "2026"])
    assert result.exit_code == 0, result.output
    assert "trends of cifar10" in result.output and "trends of imagenet" in result.output
    assert "robust accuracy in 2026" in result.output
    data = json.loads((tmp_path / "cifar10" / "trends.json").read_text())
    doubling = data["trends"]["n_params"]["eras"][0]["doubling_years"]["value"]
    assert doubling == pytest.approx(2.0, rel=0.1)
    fast = json.loads((tmp_path / "imagenet" / "trends.json").read_text())
    assert fast["trends"]["n_params"]["eras"][0]["doubling_years"]["value"] == pytest.approx(1.0, rel=0.1)
    for name in ("n_params_vs_year", "fwd_flops_vs_year", "robust_acc_vs_year", "efficiency_frontier"):
        assert (tmp_path / "cifar10" / f"{name}.png").stat().st_size > 1000
    assert not (tmp_path / "cifar10" / "train_flops_vs_year.png").exists()  # no data: no figure


def test_trends_with_given_eras_and_a_recipe_file(zoo_csv, tmp_path):
    recipes = tmp_path / "recipes.csv"
    pd.DataFrame({"model_id": [f"cifar10{i}" for i in range(50)], "epochs": 100, "n_train": 50_000,
                  "method": "pgd_at"}).to_csv(recipes, index=False)
    result = runner.invoke(app, ["trends", str(zoo_csv), "--dataset", "cifar10", "--eras", "2017-2020,2021-2024",
                                 "--recipes", str(recipes), "--bootstrap", "50", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "o" / "cifar10" / "trends.json").read_text())
    assert [e["bounds"] for e in data["trends"]["train_flops"]["eras"]] == [[2017, 2020], [2021, 2024]]
    assert (tmp_path / "o" / "cifar10" / "train_flops_vs_year.png").exists()


def test_trends_reads_a_user_table_through_column_mappings(tmp_path):
    rng = np.random.default_rng(2)
    year = rng.uniform(2015, 2025, 40)
    table = tmp_path / "mine.csv"
    pd.DataFrame({"when": year, "size": 10 ** (6 + math.log10(2) / 3.0 * (year - 2015)), "flops": 1e9,
                  "acc": 0.5}).to_csv(table, index=False)
    result = runner.invoke(app, ["trends", str(table), "--column", "year=when", "--column", "n_params=size",
                                 "--column", "fwd_flops=flops", "--column", "robust_acc=acc", "--bootstrap", "20",
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "o" / "trends.json").read_text())
    assert data["trends"]["n_params"]["eras"][0]["doubling_years"]["value"] == pytest.approx(3.0, rel=1e-6)
    flat = data["trends"]["fwd_flops"]["eras"][0]["doubling_years"]["value"]
    assert flat is None  # constant FLOPs never double (inf is written as null)
    result = runner.invoke(app, ["trends", str(table), "--column", "year"])
    assert result.exit_code == 2 and "ZOO=SOURCE" in result.output
    result = runner.invoke(app, ["trends", str(table), "--column", "year=nope"])
    assert result.exit_code == 2 and "column 'nope' (for year) not in the table" in result.output


def test_trends_errors_name_the_fix(zoo_csv, tmp_path):
    result = runner.invoke(app, ["trends", str(zoo_csv), "--dataset", "mnist", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "mnist" in result.output
    result = runner.invoke(app, ["trends", str(zoo_csv), "--eras", "2018", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "FIRST-LAST" in result.output


def test_plot_writes_the_requested_kind(zoo_csv, tmp_path):
    out = tmp_path / "acc.svg"
    result = runner.invoke(app, ["plot", "accuracy-vs-year", str(zoo_csv), "--dataset", "cifar10", "--out", str(out),
                                 "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    assert out.read_text().lstrip().startswith("<?xml")
    result = runner.invoke(app, ["plot", "overhead", "bartoldson2024_approach2", "--law", "x", "--out", str(out)])
    assert result.exit_code == 2 and "--law does not apply" in result.output
    result = runner.invoke(app, ["plot", "accuracy-vs-flops", str(zoo_csv), "--out", str(out)])
    assert result.exit_code == 2 and "needs columns" in result.output


def test_fit_law_predictor_prints_importances_and_draws_the_parity_plot(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"params": rng.choice([36e6, 267e6], 100), "synthetic": rng.choice([True, False], 100),
                          "noise": rng.normal(size=100)})
    frame["aa"] = 40 + 10 * frame.synthetic + rng.normal(0, 0.5, 100)
    table = tmp_path / "runs.csv"
    frame.to_csv(table, index=False)
    out = tmp_path / "pred.json"
    result = runner.invoke(app, ["fit", str(table), "--law", "predictor", "--features", "params,synthetic,noise",
                                 "--y", "aa", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert next(iter(saved["importances"])) == "synthetic" and saved["r2_test"] > 0.9
    assert out.with_suffix(".png").stat().st_size > 1000
    result = runner.invoke(app, ["fit", str(table), "--law", "predictor", "--y", "aa"])
    assert result.exit_code == 2 and "--features" in result.output
