"""Counted training FLOPs per sample: WRN anchors from REFERENCE.md s.3 and the analytic cross-check."""

from __future__ import annotations

import importlib
import time

import pytest
import torch
import torch.nn as nn

from robustperf.config import RunConfig
from robustperf.cost import accounting, analytic


def create_model(name: str, **kwargs: object) -> nn.Module:
    models = importlib.import_module("robustperf.models")
    if not hasattr(models, "create_model"):
        pytest.skip("robustperf.models.create_model is not there yet (models part in progress)")
    return models.create_model(name, num_classes=10, **kwargs)


def wrn(depth: int, width: int, device: str = "meta") -> nn.Module:
    with torch.device(device):
        return create_model("wide_resnet", depth=depth, width=width)


def cfg_for(method: str, n_steps: int, **more: object) -> RunConfig:
    overrides = {"method.name": method, "method.attack.n_steps": n_steps, **more}
    return RunConfig().with_overrides(overrides)


def train_flops_per_sample(model: nn.Module, cfg: RunConfig, **kwargs: object) -> accounting.FlopsBreakdown:
    """The breakdown of ``cfg``'s method, counted on the iteration the training engine hands over."""
    from robustperf.training.methods import flop_iteration

    return accounting.train_flops_per_sample(model, cfg, flop_iteration(cfg.method), **kwargs)


def analytic_conv_linear_flops(model: nn.Module, x: torch.Tensor) -> int:
    """2 x MACs of every Conv2d / Linear from the shapes forward hooks see (independent of the FLOP table)."""
    total = 0

    def hook(m: nn.Module, inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += 2 * m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups) * out.numel()
        else:
            total += 2 * m.in_features * out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total


def test_wrn_28_10_forward_flops_and_f_arch() -> None:
    start = time.perf_counter()
    model = wrn(28, 10)
    b = train_flops_per_sample(model, cfg_for("trades", 10), input_shape=(3, 32, 32), num_classes=10)
    assert time.perf_counter() - start < 20  # meta device: counting a WRN-28-10 iteration is cheap
    assert b.forward_flops == pytest.approx(10.49e9, rel=0.005)
    n_params = sum(p.numel() for p in model.parameters())
    f = analytic.f_arch(b.forward_flops, n_params)
    # Bartoldson et al. 2024: FLOPs = 7822 N D = 27 x f_arch (REFERENCE.md s.3).
    assert 27 * f == pytest.approx(analytic.BARTOLDSON_FLOPS_PER_PARAM_SAMPLE.value, rel=0.02)
    assert b.passes == pytest.approx(27.0, rel=0.01)
    assert b.per_sample == pytest.approx(b.forward_flops * b.passes)


@pytest.mark.parametrize(("method", "k", "expected"), [("pgd_at", 10, 23.0), ("standard", 0, 3.0)])
def test_wrn_28_10_method_passes(method: str, k: int, expected: float) -> None:
    b = train_flops_per_sample(wrn(28, 10), cfg_for(method, k), input_shape=(3, 32, 32), num_classes=10)
    assert b.passes == pytest.approx(expected, rel=0.01)
    assert b.analytic_passes == expected


@pytest.mark.parametrize(("depth", "width"), [(10, 1), (16, 2)])
def test_counter_matches_hand_count_on_small_wrns(depth: int, width: int) -> None:
    torch.manual_seed(0)
    model = wrn(depth, width, device="cpu").eval()
    x = torch.rand(2, 3, 32, 32)
    expected = analytic_conv_linear_flops(model, x) / 2
    b = train_flops_per_sample(model, cfg_for("standard", 0), input_shape=(3, 32, 32), num_classes=10)
    assert b.forward_flops == pytest.approx(expected, rel=1e-9)


def tiny_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 10),
    )


@pytest.mark.parametrize(
    ("method", "k", "awp"),
    [
        ("standard", 0, False),
        ("pgd_at", 3, False),
        ("trades", 5, False),
        ("mart", 4, False),
        ("fast_at", 1, False),
        ("fgsm_noproj", 1, False),
        ("free_at", 1, False),
        ("pgd_at", 2, True),
        ("trades", 2, True),
    ],
)
def test_counted_passes_track_the_analytic_model(method: str, k: int, awp: bool) -> None:
    cfg = cfg_for(method, k, **({"method.awp": {"gamma": 0.005}} if awp else {}))
    b = train_flops_per_sample(tiny_net(), cfg, input_shape=(3, 8, 8), num_classes=10)
    # The first conv's input gradient is not needed in the weight backward: a little under the analytic value.
    assert b.passes <= b.analytic_passes
    assert b.passes == pytest.approx(b.analytic_passes, rel=0.1)
    assert b.forward_part + b.backward_part == pytest.approx(b.per_sample)
    assert (b.attack_flops > 0) == (method not in ("standard", "free_at"))  # free AT's attack rides on the backward


def test_counting_leaves_the_model_untouched() -> None:
    model = tiny_net().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_flops_per_sample(model, cfg_for("trades", 2), input_shape=(3, 8, 8), num_classes=10)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_unknown_method_is_named() -> None:
    from robustperf.registry import RegistryError

    with pytest.raises(RegistryError, match="nonexistent"):
        train_flops_per_sample(tiny_net(), cfg_for("nonexistent", 1), input_shape=(3, 8, 8), num_classes=10)


def test_eval_flops_pgd_and_from_counts() -> None:
    from robustperf.cost.accounting import eval_flops_from_counts, pgd_eval_flops

    model = tiny_net()
    pgd = pgd_eval_flops(model, (3, 8, 8), n_examples=10, n_steps=40)
    # One input-gradient evaluation is exactly 2F (the first conv's input gradient is needed too).
    assert pgd.gradient_flops == pytest.approx(2 * pgd.forward_flops)
    assert pgd.total == pytest.approx(10 * pgd.forward_flops * analytic.pgd_eval_equivalents(40))
    counted = eval_flops_from_counts(model, (3, 8, 8), n_forward_images=100, n_gradient_images=50)
    assert counted.total == pytest.approx(pgd.forward_flops * (100 + 2 * 50))


def test_the_counter_counts_the_iteration_it_is_handed() -> None:
    """No method knowledge in cost: a hand-written iteration is counted as written, split at its mark."""
    model = tiny_net()
    fwd = accounting.train_flops_per_sample(model, cfg_for("standard", 0), lambda *_: None,
                                            input_shape=(3, 8, 8)).forward_flops

    def two_attack_steps_then_a_training_pass(m: nn.Module, x: torch.Tensor, y: torch.Tensor, done) -> None:
        m.eval()
        for _ in range(2):  # input-gradient steps: 2F each
            x = x.detach().requires_grad_(True)
            torch.autograd.grad(nn.functional.cross_entropy(m(x), y), x)
        done()
        m.train()
        nn.functional.cross_entropy(m(x.detach()), y).backward()  # forward + full backward: a little under 3F

    b = accounting.train_flops_per_sample(model, cfg_for("pgd_at", 2), two_attack_steps_then_a_training_pass,
                                          input_shape=(3, 8, 8))
    assert b.attack_flops == pytest.approx(4 * fwd)
    assert b.per_sample - b.attack_flops == pytest.approx(3 * fwd, rel=0.1)
    assert b.analytic_passes == 7.0  # the note and cross-check still come from the config
    never_marked = accounting.train_flops_per_sample(model, cfg_for("pgd_at", 2), lambda *_: None,
                                                     input_shape=(3, 8, 8))
    assert never_marked.attack_flops == never_marked.per_sample == 0


def test_pass_counter_prices_a_pgd_run_like_the_formula() -> None:
    from robustperf.cost.accounting import eval_flops_from_counts, pgd_eval_flops
    from robustperf.cost.flops import PassCounter, count_flops

    model = tiny_net().eval()
    counted = PassCounter(model)
    x = torch.rand(4, 3, 8, 8)
    y = torch.zeros(4, dtype=torch.long)

    def pgd(n_steps: int) -> None:  # clean forward, n input-gradient steps, scoring forward
        with torch.no_grad():
            counted(x)
        x_adv = x.clone()
        for _ in range(n_steps):
            x_adv.requires_grad_(True)
            (g,) = torch.autograd.grad(nn.functional.cross_entropy(counted(x_adv), y), x_adv)
            x_adv = (x_adv.detach() + 0.01 * g.sign()).clamp(0, 1)
        with torch.no_grad():
            counted(x_adv)

    measured = count_flops(pgd, 5).total
    assert (counted.n_forward_images, counted.n_gradient_images) == (8, 20)
    priced = eval_flops_from_counts(model, (3, 8, 8), n_forward_images=8, n_gradient_images=20).total
    assert priced == pytest.approx(measured)
    assert pgd_eval_flops(model, (3, 8, 8), n_examples=4, n_steps=5).total == pytest.approx(measured)
