"""Training methods: each lowers its loss on one batch, trains every parameter, attacks inside the ball."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustperf.config import AWPConfig, MethodConfig
from robustperf.registry import RegistryError
from robustperf.training.methods import METHODS, MethodConfigError, attack_mode, create_method, trades_kl

EPS = 0.1
ATTACK = {"eps": EPS, "step_size": 0.03, "n_steps": 3}


def small_net(n_classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, n_classes),
    )


def batch(n: int = 32, n_classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    y = torch.arange(n) % n_classes
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.5
    x[:, 0, : 2 * (n_classes - 1), :] += 0.4 * (y[:, None, None] == torch.arange(n_classes - 1).repeat_interleave(2)[None, :, None])
    return x.clamp(0, 1), y


CASES = [
    ("standard", None),
    ("pgd_at", None),
    ("trades", None),
    ("mart", None),
    ("fast_at", None),
    ("free_at", None),
    ("fgsm_noproj", None),
    ("pgd_at", AWPConfig(gamma=0.01)),
    ("trades", AWPConfig(gamma=0.01)),
]


def make(name: str, awp: AWPConfig | None = None, **kw) -> object:
    cfg = MethodConfig(name=name, attack=ATTACK, awp=awp, **kw)
    return create_method(cfg, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(("name", "awp"), CASES, ids=[f"{n}{'+awp' if a else ''}" for n, a in CASES])
def test_overfits_one_batch(name: str, awp: AWPConfig | None) -> None:
    model, (x, y) = small_net(), batch()
    method = make(name, awp)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(40):
        out = method.step(model, x, y)
        opt.zero_grad()
        out.loss.backward()
        method.after_backward(model)
        opt.step()
        losses.append(float(out.loss.detach()))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.6 * losses[0], losses


@pytest.mark.parametrize(("name", "awp"), CASES, ids=[f"{n}{'+awp' if a else ''}" for n, a in CASES])
def test_every_parameter_gets_a_gradient(name: str, awp: AWPConfig | None) -> None:
    model, (x, y) = small_net(), batch()
    out = make(name, awp).step(model, x, y)
    out.loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", ["pgd_at", "trades", "mart", "fast_at"])
@pytest.mark.parametrize("bn_mode", ["eval", "batch_frozen"])
def test_attack_stays_in_ball_touches_no_grad_or_running_stats(name: str, bn_mode: str) -> None:
    model, (x, y) = small_net(), batch()
    model.train()
    bn = model[1]
    before = (bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked))
    x_adv, _ = make(name, bn_mode=bn_mode).perturb(model, x, y)
    assert (x_adv - x).abs().max() <= EPS + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv != x).any()
    assert all(p.grad is None for p in model.parameters())  # gradients w.r.t. the input only
    assert torch.equal(bn.running_mean, before[0]) and torch.equal(bn.running_var, before[1])
    assert int(bn.num_batches_tracked) == before[2]
    assert model.training and bn.track_running_stats


def test_batch_frozen_uses_batch_statistics() -> None:
    model, (x, _) = small_net(), batch()
    model.train()
    with torch.no_grad():
        model[1].running_mean.fill_(5.0)  # far from the batch mean: eval mode would give other outputs
        with attack_mode(model, "batch_frozen"):
            frozen = model(x)
        with attack_mode(model, "eval"):
            evaluated = model(x)
        model[1].track_running_stats = False
        batch_stats = model(x)
        model[1].track_running_stats = True
    assert torch.allclose(frozen, batch_stats)
    assert not torch.allclose(frozen, evaluated)
    assert torch.equal(model[1].running_mean, torch.full((8,), 5.0))


def test_awp_restores_weights_exactly() -> None:
    model, (x, y) = small_net(), batch()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    method = make("trades", AWPConfig(gamma=0.01))
    out = method.step(model, x, y)
    assert not torch.equal(model[0].weight, before["0.weight"])  # perturbed during the outer loss
    out.loss.backward()
    method.after_backward(model)
    for k, v in model.state_dict().items():
        if "running" in k or "num_batches" in k:
            continue
        assert torch.equal(v, before[k]), k


def test_awp_warmup_leaves_weights_alone() -> None:
    model, (x, y) = small_net(), batch()
    method = make("pgd_at", AWPConfig(gamma=0.01, warmup_epochs=2))
    method.set_epoch(1)
    w = model[0].weight.clone()
    method.step(model, x, y)
    assert torch.equal(model[0].weight, w)


def test_label_smoothing_changes_loss() -> None:
    model, (x, y) = small_net(), batch()
    plain = make("standard").step(model, x, y).loss
    smooth = make("standard", label_smoothing=0.1).step(model, x, y).loss
    assert not torch.isclose(plain, smooth)


def test_trades_kl_matches_definition() -> None:
    a, c = torch.randn(5, 4), torch.randn(5, 4)
    p, q = c.softmax(1), a.softmax(1)
    expected = (p * (p.log() - q.log())).sum(1).mean()
    assert torch.allclose(trades_kl(a, c), expected, atol=1e-6)
    assert float(trades_kl(c, c)) == pytest.approx(0.0, abs=1e-7)


def test_fast_at_step_is_one_and_a_quarter_eps() -> None:
    method = make("fast_at")
    assert method.settings.step_ratio == 1.25
    model, (x, y) = small_net(), batch()
    x_adv, _ = method.perturb(model, x, y)
    assert (x_adv - x).abs().max() <= EPS + 1e-6


def test_registry_errors_name_alternatives() -> None:
    assert set(METHODS.names()) >= {"standard", "pgd_at", "trades", "mart", "fast_at", "free_at", "fgsm_noproj"}
    with pytest.raises(RegistryError, match="trades"):
        create_method(MethodConfig(name="trade"))
    with pytest.raises(MethodConfigError, match="pgd_at, trades"):
        create_method(MethodConfig(name="mart", awp=AWPConfig()))
