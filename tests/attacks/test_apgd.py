"""APGD-CE / APGD-DLR / APGD-T: schedule, bookkeeping, and point-wise agreement with the reference."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustperf.attacks import AttackConfigError, create_attack
from robustperf.attacks.apgd import checkpoint_intervals

NORM_NAMES = {"linf": "Linf", "l2": "L2"}


def _reference_robust(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str, norm: str, eps: float
) -> torch.Tensor:
    from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

    cls = APGDAttack_targeted if name == "apgd-t" else APGDAttack
    with torch.random.fork_rng():  # the reference seeds the global RNG
        ref = cls(model, n_iter=100, norm=NORM_NAMES[norm], eps=eps, seed=0, device="cpu")
        x_adv = ref.perturb(x, y)
    with torch.no_grad():
        return model(x_adv).argmax(1) == y


@pytest.mark.parametrize(
    "name,norm,eps",
    [("apgd-ce", "linf", 0.05), ("apgd-t", "linf", 0.05), ("apgd-ce", "l2", 0.5), ("apgd-t", "l2", 0.5)],
)
def test_agrees_with_reference_point_by_point(digits_mlp, name: str, norm: str, eps: float) -> None:
    model, x, y = digits_mlp
    ref_robust = _reference_robust(model, x, y, name, norm, eps)
    result = create_attack(name, eps=eps, norm=norm, seed=0).perturb(model, x, y)
    ours = ~result.success
    assert 0.2 < ref_robust.float().mean() < 0.8  # a setting where the attack decides many points
    assert (ours == ref_robust).float().mean() >= 0.99
    assert abs(ours.float().mean() - ref_robust.float().mean()) <= 0.01


def test_checkpoint_schedule_matches_paper() -> None:
    # p_1 = 0.22, decrement 0.03, minimum 0.06 of n_iter (Croce & Hein 2020, Sec. 3.2)
    assert checkpoint_intervals(100) == (22, 3, 6)
    assert checkpoint_intervals(10) == (2, 1, 1)


def test_apgd_beats_pgd_with_same_budget_on_ce(digits_mlp) -> None:
    model, x, y = digits_mlp
    apgd = create_attack("apgd-ce", eps=0.05, n_iter=20).perturb(model, x, y)
    pgd = create_attack("pgd", eps=0.05, n_steps=20, loss="ce", step_size=0.05 / 4).perturb(model, x, y)
    assert apgd.success.sum() >= pgd.success.sum()


def test_targets_in_parallel_give_the_same_verdicts_cheaper_in_calls(digits_mlp) -> None:
    model, x, y = digits_mlp
    seq = create_attack("apgd-t", eps=0.05, n_iter=30).perturb(model, x, y)
    par = create_attack("apgd-t", eps=0.05, n_iter=30, max_rows=9 * x.shape[0]).perturb(model, x, y)
    assert (seq.success == par.success).float().mean() >= 0.98
    assert par.extras["backward_calls"] < seq.extras["backward_calls"] / 3  # 9 targets share each pass


def test_points_are_dropped_once_fooled(digits_mlp) -> None:
    model, x, y = digits_mlp
    result = create_attack("apgd-ce", eps=0.1, n_iter=50).perturb(model, x, y)
    n_attacked = result.extras["n_attacked"]
    # without dropping, 50 iterations cost 50 backward passes per attacked point
    assert result.n_backward < 0.5 * 50 * n_attacked
    assert result.success.float().mean() > 0.5


def test_bf16_search_successes_hold_in_fp32(digits_mlp) -> None:
    model, x, y = digits_mlp
    fp32 = create_attack("apgd-t", eps=0.05, n_iter=30).perturb(model, x, y)
    bf16 = create_attack("apgd-t", eps=0.05, n_iter=30, search_dtype="bf16").perturb(model, x, y)
    with torch.no_grad():
        verdict = model(bf16.x_adv).argmax(1) != y
    assert torch.equal(bf16.success, verdict)
    assert abs(bf16.success.float().mean() - fp32.success.float().mean()) <= 0.02


def test_dlr_variants_need_enough_classes() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x, y = torch.rand(4, 1, 2, 2), torch.zeros(4, dtype=torch.long)
    with torch.no_grad():
        y = model(x).argmax(1)
    with pytest.raises(AttackConfigError, match=">= 4 classes"):
        create_attack("apgd-t").perturb(model, x, y)
    create_attack("apgd-dlr", n_iter=2).perturb(model, x, y)  # 3 classes suffice untargeted


def test_bad_config_is_rejected_before_any_work() -> None:
    with pytest.raises(AttackConfigError, match="loss"):
        create_attack("apgd-ce", loss="cw")
    with pytest.raises(AttackConfigError, match="n_iter"):
        create_attack("apgd-t", n_iter=0)
    with pytest.raises(AttackConfigError, match="norm"):
        create_attack("apgd-ce", norm="l1")


def test_zero_gradients_are_reported() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 5))
    with torch.no_grad():  # every ReLU dead: the logits are constant, the input gradient zero
        model[1].weight.zero_()
        model[1].bias.fill_(-1.0)
    x = torch.rand(6, 1, 2, 2)
    y = torch.full((6,), int(model(x).argmax(1)[0]))
    result = create_attack("apgd-ce", n_iter=3).perturb(model, x, y)
    assert result.extras["zero_grad_rows"] == result.extras["grad_rows"] > 0
