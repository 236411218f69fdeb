"""A zoo model evaluated on CIFAR-10 images with robustperf's AutoAttack, priced, and written as RobustBench
model_info JSON that RobustBench's own ModelInfo schema and loader code accept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner
from zoo_helpers import CHEAP, TINY, check_with_robustbench, save_robustbench_style, seeded

from robustperf.cli.app import app
from robustperf.config import CostConfig
from robustperf.evaluation import evaluate
from robustperf.zoo import CostFields, evaluate_with_cost, load_zoo_model, model_info, write_model_info
from robustperf.zoo.data import leaderboard_points
from robustperf.zoo.load import build_architecture


def test_evaluate_price_and_write_model_info(tiny_entry, cifar10: Path, tmp_path: Path) -> None:
    save_robustbench_style(tiny_entry, tmp_path / "models", seeded(build_architecture(tiny_entry)))
    model = load_zoo_model("Tiny2026Zoo", model_dir=tmp_path / "models")
    x, y = leaderboard_points("cifar10", cifar10, 12)
    assert x.shape == (12, 3, 32, 32) and y[:4].tolist() == [3, 8, 8, 0]  # the official test order
    priced = evaluate_with_cost(model, x, y, eps=8 / 255, attack_params=CHEAP,
                                cost_cfg=CostConfig(energy_meter="estimate", watts=20.0))
    plain = evaluate(model, x, y, eps=8 / 255, attack_params=CHEAP)
    assert priced.result.clean_acc == plain.clean_acc and priced.result.robust_acc == plain.robust_acc
    e = priced.eval
    assert e["n_forward_images"] >= 12 and e["n_gradient_images"] >= 0
    assert e["flops"] == pytest.approx(priced.forward_flops_per_image * (e["n_forward_images"]
                                                                          + 2 * e["n_gradient_images"]))
    assert e["energy_kwh"] > 0 and e["usd"] > 0 and e["energy_method"] == "estimated"
    info = model_info(name="Tiny2026Zoo", dataset="cifar10", architecture=TINY.architecture, eps=8 / 255,
                      clean_acc=priced.result.clean_acc, robust_acc=priced.result.robust_acc,
                      cost=CostFields(priced.n_params, priced.forward_flops_per_image, e, "test machine"))
    path = write_model_info(tmp_path / "model_info", "cifar10", "Linf", "Tiny2026Zoo", info)
    assert path == tmp_path / "model_info" / "cifar10" / "Linf" / "Tiny2026Zoo.json"
    back = json.loads(path.read_text())
    assert back["autoattack_acc"] == str(round(plain.robust_acc * 100, 2))
    assert back["cost"]["n_params"] == sum(p.numel() for p in model.parameters())
    check_with_robustbench(back)


def test_zoo_cli_evaluate_writes_the_json(tiny_entry, cifar10: Path, tmp_path: Path) -> None:
    save_robustbench_style(tiny_entry, tmp_path / "models", seeded(build_architecture(tiny_entry)))
    out = tmp_path / "info"
    result = CliRunner().invoke(app, ["zoo", "evaluate", "Tiny2026Zoo", "--model-dir", str(tmp_path / "models"),
                                      "--data-root", str(cifar10), "--n-examples", "8", "--energy-meter", "estimate",
                                      "--watts", "15", "--out", str(out), "--venue", "test 2026",
                                      *[f"--set-attack={stage}.{k}={v}" for stage, kv in CHEAP.items()
                                        for k, v in kv.items()]])
    assert result.exit_code == 0, result.output
    info = json.loads((out / "cifar10" / "Linf" / "Tiny2026Zoo.json").read_text())
    assert info["cost"]["eval"]["n_examples"] == 8 and info["venue"] == "test 2026"
    assert info["cost"]["eval"]["attack_params"] == CHEAP
    assert info["cost"]["forward_flops_per_image"] > 0 and "CPUs" in info["cost"]["machine"]
    check_with_robustbench(info)
    listed = CliRunner().invoke(app, ["zoo", "list", "--model-dir", str(tmp_path / "models")])
    assert "Tiny2026Zoo" in listed.output and "present" in listed.output
    # the evaluated model as a zoo table: what the report's overlay and the zoo trends read
    table = CliRunner().invoke(app, ["zoo", "table", str(out), "--out", str(tmp_path / "zoo.csv")])
    assert table.exit_code == 0, table.output
    from robustperf.report.tables import load_overlay
    from robustperf.scaling.trends import load_zoo

    overlay = load_overlay(tmp_path / "zoo.csv")
    assert overlay["robust_acc"].tolist() == [pytest.approx(float(info["autoattack_acc"]) / 100)]
    zoo = load_zoo(tmp_path / "zoo.csv")
    assert zoo["year"].tolist() == [2026] and zoo["n_params"].tolist() == [info["cost"]["n_params"]]
    assert zoo["fwd_flops"].tolist() == [pytest.approx(info["cost"]["forward_flops_per_image"])]


def test_zoo_cost_counts_wrn_28_10_without_a_checkpoint() -> None:
    result = CliRunner().invoke(app, ["zoo", "cost", "Carmon2019Unlabeled"])
    assert result.exit_code == 0, result.output
    assert "36,479,194" in result.output and "1.049e+10" in result.output  # REFERENCE.md s.3: 36.48M, 10.49 GFLOPs
