"""Robust-vs-standard overhead: trimmed means, ratios, layer-type and phase breakdown of the real method steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from robustperf.config import RunConfig
from robustperf.training.overhead import (
    LAYER_TYPES,
    OverheadConfig,
    OverheadConfigError,
    classify_op,
    measure_overhead,
    method_stepper,
    plot_overhead,
    profile_layers,
    trimmed_mean,
)

CFG = {
    "data.dataset": "digits", "data.n_train": 64, "data.batch_size": 32, "model.name": "tiny_cnn",
    "model.kwargs": {"width": 4}, "method.attack.n_steps": 2, "method.attack.eps": 0.1,
    "method.attack.step_size": 0.05, "runtime.device": "cpu",
}


def test_trimmed_mean_drops_fastest_and_slowest() -> None:
    assert trimmed_mean([5.0, 1.0, 3.0, 100.0, 4.0]) == pytest.approx(4.0)
    assert trimmed_mean([2.0, 9.0, 1.0]) == 2.0
    with pytest.raises(ValueError, match=">= 3"):
        trimmed_mean([1.0, 2.0])


def test_config_validation_names_the_fix() -> None:
    with pytest.raises(OverheadConfigError, match="repeats must be >= 3"):
        OverheadConfig(repeats=2)
    assert OverheadConfig(methods=("trades", "pgd_at", "trades")).all_methods == ("standard", "trades", "pgd_at")


@pytest.mark.parametrize(("op", "kind"), [
    ("aten::mkldnn_convolution", "conv"), ("aten::convolution_backward", "conv"),
    ("aten::native_batch_norm", "batch_norm"), ("aten::native_batch_norm_backward", "batch_norm"),
    ("aten::relu", "activation"), ("aten::threshold_backward", "activation"), ("aten::gelu", "activation"),
    ("aten::addmm", "linear"), ("aten::mm", "linear"), ("aten::_scaled_dot_product_flash_attention", "attention"),
    ("aten::_log_softmax", "loss"), ("aten::nll_loss_forward", "loss"), ("aten::sign", "other"),
    ("aten::clamp", "other"), ("Optimizer.zero_grad#SGD.zero_grad", "optimizer"),
])
def test_classify_op(op: str, kind: str) -> None:
    assert classify_op(op) == kind


def test_unknown_method_fails_before_work() -> None:
    from robustperf.registry import RegistryError

    with pytest.raises(RegistryError, match="pgd_at"):
        measure_overhead(RunConfig().with_overrides(CFG), OverheadConfig(methods=("pgd_atx",), repeats=3))


def test_overhead_of_pgd_at_and_trades_on_a_tiny_cnn(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    cfg = RunConfig().with_overrides(CFG)
    result = measure_overhead(cfg, OverheadConfig(methods=("pgd_at", "trades"), repeats=3, max_steps=2,
                                                  profile_steps=1, meter="estimate", watts=30.0))
    by = {e.method: e for e in result.epochs}
    assert list(by) == ["standard", "pgd_at", "trades"]
    assert by["standard"].ratios["seconds"] == pytest.approx(1.0)
    for e in result.epochs:
        assert len(e.seconds_repeats) == 3 and e.steps == 2 and e.images == 64
        assert e.seconds == pytest.approx(sorted(e.seconds_repeats)[1])  # 3 repeats: the median is kept
        assert e.joules == pytest.approx(30.0 * e.seconds, rel=1e-6)  # estimate: stated power x the same window
        assert e.ratios["watts"] == pytest.approx(1.0, rel=1e-6)  # one window: estimate power is constant
    # PGD-2 AT: 2 input-gradient steps (2F each) + the update (3F) = 7F vs 3F; counted, standard's backward
    # skips the first conv's input gradient, so the counted ratio is a little above 7/3 on so tiny a model.
    assert by["pgd_at"].ratios["flops"] == pytest.approx(7 / 3, rel=0.1)
    assert by["trades"].ratios["flops"] > by["pgd_at"].ratios["flops"]
    assert result.energy_method == "estimated" and any("estimate" in n for n in result.notes)
    layers = {layer.method: layer for layer in result.layers}
    assert set(layers["standard"].by_type) == set(LAYER_TYPES)
    assert layers["standard"].by_phase["attack"] == 0.0  # no attack in standard training
    for name in ("pgd_at", "trades"):  # the methods' own perturb ran inside the attack phase
        assert layers[name].by_phase["attack"] > 0
        assert layers[name].by_phase_type.get("attack/conv", 0.0) > 0
    for layer in result.layers:
        assert layer.by_type["conv"] > 0 and layer.by_type["optimizer"] > 0
        assert layer.wall_ms >= 0.8 * layer.total_ms  # ops run inside the step (medians: not exact)
        assert layer.untracked_ms >= 0
        assert layer.by_type["optimizer"] >= layer.by_phase["optimizer"] > 0  # + zero_grad in the update phase
    json.dumps(result.to_dict())  # JSON-ready
    fig = plot_overhead(result)
    assert len(fig.axes) == 2 and fig.axes[1].patches  # the stacked layer bars are drawn


def test_the_profiled_step_is_the_training_loops_step() -> None:
    """k profiled steps (phase hook, torch.profiler) leave the weights, EMA and lr k loop steps leave."""
    import copy

    from robustperf.training import step
    from robustperf.training.distributed import DistInfo
    from robustperf.training.setup import build_parts

    cfg = RunConfig().with_overrides({**CFG, "method.name": "pgd_at", "optim.ema_decay": 0.9,
                                      "optim.grad_clip": 1.0, "optim.lr": 0.05})
    parts = build_parts(cfg, DistInfo(), torch.device("cpu"))  # the loop's parts, before any step
    base = copy.deepcopy(parts.raw)
    batches = list(parts.loader)
    profiled = method_stepper(cfg, "pgd_at", base, copy.deepcopy(base.state_dict()), torch.device("cpu"))
    layers = profile_layers(profiled, batches, 2, "pgd_at", lr=cfg.optim.lr)  # 1 warm-up + 2 profiled steps
    assert layers.steps == 2 and layers.by_phase["attack"] > 0
    assert set(layers.by_phase) == set(step.PHASES)  # the report's phases are the step's
    for i in range(3):
        parts.stepper(*batches[i % len(batches)], cfg.optim.lr)
    assert profiled.ema is not None and parts.ema is not None and profiled.ema.n_updates == parts.ema.n_updates == 3
    for a, b in zip(profiled.raw.state_dict().values(), parts.raw.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(profiled.ema.module.state_dict().values(), parts.ema.module.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert profiled.optimizer.param_groups[0]["lr"] == 0.05


def test_cli_cost_breakdown_prints_and_plots(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from robustperf.cli.app import app

    sets = [a for k, v in CFG.items() if k != "model.kwargs" for a in ("--set", f"{k}={v}")]
    args = ["cost", "breakdown", "configs/quickstart.yaml", *sets, "--set", "model.kwargs.width=4",
            "--methods", "pgd_at", "--repeats", "3", "--max-steps", "1", "--profile-steps", "1",
            "--meter", "estimate", "--watts", "20", "--out", str(tmp_path)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "x time" in text and "phase: attack input-gradient passes" in text and "energy estimated" in text
    assert (tmp_path / "overhead.png").stat().st_size > 1000
    data = json.loads((tmp_path / "overhead.json").read_text())
    assert [e["method"] for e in data["epochs"]] == ["standard", "pgd_at"]
    bad = CliRunner().invoke(app, ["cost", "breakdown", "configs/quickstart.yaml", "--repeats", "2"])
    assert bad.exit_code != 0 and "repeats must be >= 3" in bad.output
