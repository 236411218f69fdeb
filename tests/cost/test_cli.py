"""`robustperf cost ...`: estimate a planned run, FLOPs table, inference table, grid presets."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from robustperf.cli.app import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def needs_models() -> None:
    if not hasattr(importlib.import_module("robustperf.models"), "create_model"):
        pytest.skip("robustperf.models.create_model is not there yet (models part in progress)")


def test_grids_lists_sourced_presets() -> None:
    result = runner.invoke(app, ["cost", "grids"])
    assert result.exit_code == 0, result.output
    assert "566.3" in result.output and "gcp_us_central1_2019" in result.output and "h100" in result.output


def test_estimate_prices_the_trades_wrn_recipe() -> None:
    needs_models()
    config = REPO / "configs" / "cifar10_trades_wrn28_10.yaml"
    result = runner.invoke(app, ["cost", "estimate", str(config), "--gpu", "h100", "--mfu", "0.4", "--json"])
    assert result.exit_code == 0, result.output
    cost = json.loads(result.output)
    # 10M samples x 27 passes x 10.49 GFLOPs (REFERENCE.md s.3) = 2.83e18 training FLOPs.
    assert cost["train_flops"] == pytest.approx(1e7 * 27 * 10.49e9, rel=0.01)
    hours = (cost["train_flops"] + cost["eval_flops"]) / (989e12 * 0.4) / 3600
    assert cost["gpu_hours"] == pytest.approx(hours)
    assert cost["energy_joules"] == pytest.approx(hours * 3600 * 700)  # H100 TDP
    assert cost["energy_kwh"] == pytest.approx(cost["energy_joules"] / 3.6e6 * 1.58)
    assert cost["co2_kg"] == pytest.approx(cost["energy_kwh"] * 0.5663)
    # Eval: 200 epochs / every 5 = 40 rounds x 1000 images x (clean + PGD-40 + scoring) = 82F each.
    assert cost["eval_flops"] == pytest.approx(40 * 1000 * 82 * cost["flops_breakdown"]["forward_flops"], rel=1e-6)


def test_estimate_with_measured_throughput_and_overrides() -> None:
    needs_models()
    config = REPO / "configs" / "cifar10_trades_wrn28_10.yaml"
    args = [
        "cost",
        "estimate",
        str(config),
        "--set",
        "optim.samples=50000",
        "--set",
        "eval.n_examples=1",
        "--throughput",
        "942",
        "--watts",
        "657",
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    cost = json.loads(result.output)
    # REFERENCE.md s.6: TRADES-10 bf16 on an H100, 942 img/s at 657 W -> 0.0153 kWh per 50k-image epoch.
    # One evaluation (after the only epoch) of one image: 82F next to 50k x 27F of training.
    assert cost["eval_flops"] == pytest.approx(82 * cost["flops_breakdown"]["forward_flops"], rel=1e-6)
    assert cost["gpu_hours"] == pytest.approx(50_000 / 942 / 3600 * (1 + cost["eval_flops"] / cost["train_flops"]))
    assert cost["energy_kwh"] == pytest.approx(0.0153, rel=0.01)


def test_estimate_bad_inputs_fail_clearly(tmp_path: Path) -> None:
    result = runner.invoke(app, ["cost", "estimate", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "does not exist" in result.output
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {dataset: imagefolder}\n")
    result = runner.invoke(app, ["cost", "estimate", str(cfg)])
    assert result.exit_code == 2 and "--input-shape" in result.output


def test_flops_and_inference_tables() -> None:
    needs_models()
    result = runner.invoke(app, ["cost", "flops", "wide_resnet", "--kwargs", '{"depth": 10, "width": 1}'])
    assert result.exit_code == 0, result.output
    assert "f_arch" in result.output and "trades" in result.output
    result = runner.invoke(
        app,
        [
            "cost",
            "inference",
            "tiny_cnn",
            "--batch-sizes",
            "1,4",
            "--precisions",
            "fp32,int8",
            "--iters",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data["points"]) == 4 and data["gflops"] > 0
