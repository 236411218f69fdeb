"""Training attacks come from the attack registry (issue 25, item 3): each adversarial method builds the
registered "pgd" from its threat model and runs its `inner_max`, bit-identical to calling `pgd_perturb`
with the method's settings, as the methods did before."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from robustperf.attacks import ATTACKS, create_attack
from robustperf.attacks.base import AttackConfigError
from robustperf.attacks.pgd import pgd_perturb
from robustperf.config import RunConfig
from robustperf.training.methods import adversarial as adversarial_module
from robustperf.training.methods import create_method

torch.manual_seed(0)
MODEL = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 5))
X = torch.rand(8, 3, 4, 4)
Y = torch.randint(0, 5, (8,))


def _method_cfg(name: str, **attack: Any) -> Any:
    overrides = {"method.name": name, "method.attack.eps": 0.1, "method.attack.step_size": 0.03,
                 "method.attack.n_steps": 3, **{f"method.attack.{k}": v for k, v in attack.items()}}
    return RunConfig().with_overrides(overrides).method


def _old_inner(name: str, cfg: Any, x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """What the methods ran before the registry: pgd_perturb with their settings (fast AT: one step of
    1.25 eps from a random start; TRADES: the KL against the clean logits)."""
    a = cfg.attack
    kw: dict[str, Any] = dict(eps=a.eps, step_size=a.step_size, n_steps=a.n_steps, norm=a.norm, loss=a.loss,
                              random_start=a.random_start, generator=g)
    if name == "fast_at":
        kw.update(n_steps=1, step_size=1.25 * a.eps, random_start=True)
    if name == "trades":
        with torch.no_grad():
            kw.update(loss="kl", target_logits=MODEL(x).float())
    return pgd_perturb(MODEL, x, y, **kw)


@pytest.mark.parametrize("name,attack", [("pgd_at", {}), ("pgd_at", {"norm": "l2", "loss": "cw"}), ("trades", {}),
                                         ("mart", {"random_start": False}), ("fast_at", {})])
def test_inner_maximisation_is_bit_identical_to_pgd_perturb(name: str, attack: dict[str, Any]) -> None:
    cfg = _method_cfg(name, **attack)
    new = create_method(cfg, generator=torch.Generator().manual_seed(5))
    x_new, _ = new.perturb(MODEL, X, Y)
    x_old = _old_inner(name, cfg, X, Y, torch.Generator().manual_seed(5))
    assert torch.equal(x_new, x_old)
    # the same RNG consumption: both generators are left in the same state
    g_old = torch.Generator().manual_seed(5)
    _old_inner(name, cfg, X, Y, g_old)
    assert torch.equal(new.generator.get_state(), g_old.get_state())


def test_methods_build_their_attack_through_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def spy(name: str, **params: Any) -> Any:
        calls.append((name, params))
        return create_attack(name, **params)

    monkeypatch.setattr(adversarial_module, "create_attack", spy)
    method = create_method(_method_cfg("fast_at"))
    assert isinstance(method.attack, ATTACKS.get("pgd"))  # type: ignore[attr-defined]
    assert calls == [("pgd", {"eps": 0.1, "norm": "linf", "step_size": pytest.approx(0.125), "n_steps": 1,
                              "loss": "ce", "random_start": True, "n_restarts": 1})]
    trades = create_method(_method_cfg("trades"))
    assert trades.attack.config.loss == "kl"  # type: ignore[attr-defined]
    awp_cfg = RunConfig().with_overrides({"method.name": "pgd_at", "method.awp.gamma": 0.01}).method
    calls.clear()
    create_method(awp_cfg)  # AWP wraps the method, whose attack is the registry's
    assert [name for name, _ in calls] == ["pgd"]


def test_kl_is_refused_by_the_evaluation_verb() -> None:
    attack = create_attack("pgd", eps=0.1, loss="kl", n_steps=1)
    with pytest.raises(AttackConfigError, match="inner_max"):
        attack.perturb(MODEL, X, Y)
    with pytest.raises(AttackConfigError, match="n_restarts must be 1"):
        create_attack("pgd", eps=0.1, n_restarts=2).inner_max(MODEL, X, Y)
