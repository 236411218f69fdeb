"""The attack contract (DESIGN.md), checked for every registered attack.

||x_adv - x|| <= eps and 0 <= x_adv <= 1 per sample; points misclassified before the attack count as
successes, so robust accuracy never exceeds clean accuracy; `success` is the fp32 verdict on x_adv; the
same seed gives the same result; neither the global RNG, the model's mode nor its parameters' .grad
change. Budgets are cut down so that every attack runs in about a second on CPU.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from torch import nn

from robustperf.attacks import ATTACKS, AttackResult, create_attack

TOL = 1e-5
# small budgets, passed only where the attack's config has the field
FAST: dict[str, Any] = {"n_steps": 5, "n_iter": 6, "n_queries": 40, "n_restarts": 1, "n_target_classes": 3}
FAST_AUTOATTACK = {
    "apgd-ce": {"n_iter": 6},
    "apgd-t": {"n_iter": 6, "n_target_classes": 3},
    "fab-t": {"n_iter": 6, "n_target_classes": 3},
    "square": {"n_queries": 40},
}
EPS = {"linf": 8 / 255, "l2": 0.5}


def _params(name: str, norm: str, seed: int = 0) -> dict[str, Any]:
    fields = {f.name for f in dataclasses.fields(ATTACKS.get(name).config_cls)}
    params = {k: v for k, v in FAST.items() if k in fields}
    if name == "autoattack":
        params["attack_params"] = FAST_AUTOATTACK
    return {**params, "eps": EPS[norm], "norm": norm, "seed": seed}


def _model_and_data() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A random tiny CNN; labels are its own predictions with a quarter flipped (clean accuracy ~75 %)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 10)).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(24, 3, 8, 8, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    flip = torch.arange(24) % 4 == 0
    y[flip] = (y[flip] + 1) % 10
    return model, x, y


def _check_ball(result: AttackResult, x: torch.Tensor, eps: float, norm: str) -> None:
    delta = (result.x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert (size <= eps + TOL).all(), f"max perturbation {size.max().item()} > eps {eps}"
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("name", ATTACKS.names())
def test_attack_contract(name: str, norm: str) -> None:
    model, x, y = _model_and_data()
    model[0].weight.grad = None
    rng = torch.get_rng_state()
    attack = create_attack(name, **_params(name, norm))
    result = attack.perturb(model, x, y)
    assert torch.equal(torch.get_rng_state(), rng), "the global RNG was used"
    assert not model.training and model[0].weight.grad is None
    assert result.x_adv.shape == x.shape and result.success.shape == y.shape
    assert result.success.dtype == torch.bool
    _check_ball(result, x, EPS[norm], norm)
    with torch.no_grad():
        clean_wrong = model(x).argmax(1) != y
        verdict = model(result.x_adv).argmax(1) != y
    assert result.success[clean_wrong].all(), "robust accuracy above clean accuracy"
    assert torch.equal(result.success, verdict | clean_wrong)
    assert result.seconds >= 0 and result.n_forward >= x.shape[0]
    again = create_attack(name, **_params(name, norm)).perturb(model, x, y)
    assert torch.equal(again.x_adv, result.x_adv) and torch.equal(again.success, result.success)


@pytest.mark.parametrize("name", ATTACKS.names())
def test_attack_rejects_unknown_parameter(name: str) -> None:
    with pytest.raises(ValueError, match="accepted parameters"):
        create_attack(name, not_a_parameter=1)


@pytest.mark.parametrize("name", ATTACKS.names())
def test_attack_construction_does_no_work_and_is_frozen(name: str) -> None:
    attack = create_attack(name, **_params(name, "linf"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        attack.config.eps = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("name", ATTACKS.names())
def test_bf16_search_keeps_the_contract_and_fp32_verdicts(name: str) -> None:
    model, x, y = _model_and_data()
    result = create_attack(name, **_params(name, "linf"), search_dtype="bf16").perturb(model, x, y)
    _check_ball(result, x, EPS["linf"], "linf")
    with torch.no_grad():
        clean_wrong = model(x).argmax(1) != y
        verdict = model(result.x_adv).argmax(1) != y
    assert torch.equal(result.success, verdict | clean_wrong), "a success that does not hold in fp32"


@pytest.mark.parametrize("name", ATTACKS.names())
def test_attack_keeps_no_per_call_state(name: str) -> None:
    """An attack object holds its config only: clean logits, extras and RNGs live in the call (issue 15)."""
    model, x, y = _model_and_data()
    attack = create_attack(name, **_params(name, "linf"))
    before = dict(vars(attack))
    first = attack.perturb(model, x, y)
    assert vars(attack) == before
    second = attack.perturb(model, x, y)  # nothing of the first call leaks into the second
    assert torch.equal(first.x_adv, second.x_adv) and torch.equal(first.success, second.success)
    assert (first.n_forward, first.n_backward) == (second.n_forward, second.n_backward)
