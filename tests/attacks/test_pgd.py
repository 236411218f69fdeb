"""pgd_perturb (the training-time inner loop) and the PGD-k attack."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustperf.attacks import AttackConfigError, ForwardCounter, create_attack
from robustperf.attacks.pgd import pgd_perturb

EPS = 0.1
TOL = 1e-6


def _tiny() -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Dropout(0.2), nn.BatchNorm1d(16), nn.Linear(16, 5))


def _batch(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 2, 2, generator=g), torch.randint(0, 5, (n,), generator=g)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("loss", ["ce", "cw", "dlr", "kl"])
def test_pgd_perturb_stays_in_ball_and_box(norm: str, loss: str) -> None:
    model = _tiny().eval()
    x, y = _batch()
    tgt = model(x).detach() if loss == "kl" else None
    x_adv = pgd_perturb(model, x, y, eps=EPS, step_size=0.05, n_steps=5, norm=norm, loss=loss, target_logits=tgt)
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert (size <= EPS + TOL).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert not x_adv.requires_grad
    assert (size > EPS / 2).any()  # it actually moved


def test_pgd_perturb_touches_no_parameter_grad_nor_mode() -> None:
    model = _tiny().train()
    x, y = _batch()
    model[1].weight.grad = torch.full_like(model[1].weight, 3.0)
    with torch.no_grad():  # must still work inside a no_grad region
        pgd_perturb(model, x, y, eps=EPS, step_size=0.05, n_steps=3)
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(model[1].weight.grad, torch.full_like(model[1].weight, 3.0))
    assert model[4].weight.grad is None
    model.eval()
    pgd_perturb(model, x, y, eps=EPS, step_size=0.05, n_steps=3)
    assert not any(m.training for m in model.modules())


def test_pgd_perturb_is_seeded_by_its_generator_only() -> None:
    model = _tiny().eval()
    x, y = _batch()
    state = torch.get_rng_state()
    a = pgd_perturb(model, x, y, eps=EPS, step_size=0.02, n_steps=2, generator=torch.Generator().manual_seed(5))
    b = pgd_perturb(model, x, y, eps=EPS, step_size=0.02, n_steps=2, generator=torch.Generator().manual_seed(5))
    c = pgd_perturb(model, x, y, eps=EPS, step_size=0.02, n_steps=2, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), state)


def test_pgd_perturb_without_random_start_and_zero_steps_is_identity() -> None:
    model = _tiny().eval()
    x, y = _batch()
    assert torch.equal(pgd_perturb(model, x, y, eps=EPS, step_size=0.1, n_steps=0, random_start=False), x)


def test_kl_loss_needs_target_logits() -> None:
    model = _tiny().eval()
    x, y = _batch()
    with pytest.raises(ValueError, match="target_logits"):
        pgd_perturb(model, x, y, eps=EPS, step_size=0.1, n_steps=1, loss="kl")
    with pytest.raises(ValueError, match="linf"):
        pgd_perturb(model, x, y, eps=EPS, step_size=0.1, n_steps=1, norm="l1")


def test_pgd_perturb_raises_training_loss(digits_mlp) -> None:
    model, x, y = digits_mlp
    clean = nn.functional.cross_entropy(model(x), y).item()
    x_adv = pgd_perturb(model, x, y, eps=0.1, step_size=0.025, n_steps=10, generator=torch.Generator().manual_seed(0))
    assert nn.functional.cross_entropy(model(x_adv), y).item() > clean + 1.0


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 1.0)])
def test_pgd_attack_reduces_accuracy_of_trained_model(digits_mlp, norm: str, eps: float) -> None:
    model, x, y = digits_mlp
    clean_acc = (model(x).argmax(1) == y).float().mean().item()
    assert clean_acc > 0.9
    result = create_attack("pgd", eps=eps, norm=norm, n_steps=20, loss="ce").perturb(model, x, y)
    robust_acc = 1 - result.success.float().mean().item()
    assert robust_acc < clean_acc - 0.3
    # success is exactly the fp32 verdict on x_adv
    assert torch.equal(result.success, model(result.x_adv).argmax(1) != y)
    assert result.n_backward > 0 and result.n_forward > result.n_backward


def test_pgd_restarts_never_hurt(digits_mlp) -> None:
    model, x, y = digits_mlp
    one = create_attack("pgd", eps=0.05, n_steps=5, n_restarts=1).perturb(model, x, y)
    three = create_attack("pgd", eps=0.05, n_steps=5, n_restarts=3).perturb(model, x, y)
    assert three.success.sum() >= one.success.sum()
    assert (three.success | ~one.success).all()  # restarts keep every point run 1 broke


def test_create_attack_names_accepted_parameters() -> None:
    with pytest.raises(AttackConfigError, match="accepted parameters: eps"):
        create_attack("pgd", n_iter=10)
    with pytest.raises(AttackConfigError, match="loss"):
        create_attack("pgd", loss="hinge")
    with pytest.raises(KeyError, match="Available"):
        create_attack("pgdd")


def test_forward_counter_counts_calls_and_images() -> None:
    model = ForwardCounter(_tiny().eval())
    x, _ = _batch(6)
    with torch.no_grad():
        model(x)
    x_req = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x_req).sum(), x_req)
    assert model.counts() == {"forward_calls": 2, "forward_images": 12, "backward_calls": 1, "backward_images": 6}
