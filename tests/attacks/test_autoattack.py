"""The AutoAttack cascade: agreement with the reference, worst case over stages, resume, versions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from robustperf.attacks import create_attack
from robustperf.attacks.autoattack import AutoAttack, AutoAttackConfig, version_specs
from robustperf.attacks.base import AttackConfigError

CHEAP = {"apgd-ce": {"n_iter": 20}, "fab-t": {"n_iter": 20, "n_target_classes": 3}, "square": {"n_queries": 100}}


def test_standard_agrees_with_reference(digits_mlp) -> None:
    """Clean accuracy identical and per-point robust flags agree on >= 99 % (REFERENCE.md section 2)."""
    pyaa = pytest.importorskip("pyautoattack")
    model, x, y = digits_mlp
    x, y = x[:150], y[:150]
    eps = 0.1  # some points survive, most fall: every stage has work to do
    ref = pyaa.AutoAttack(model, eps=eps, norm="Linf", seed=0, version="standard")
    x_ref, _ = ref.run_standard_evaluation(x, y, batch_size=75)
    with torch.no_grad():
        clean_ref = (model(x).argmax(1) == y).float().mean().item()
        robust_ref = model(x_ref).argmax(1) == y
    out = AutoAttack(AutoAttackConfig(eps=eps, seed=0)).run(model, x, y, batch_size=75)
    assert out.clean_acc == clean_ref
    assert (out.robust == robust_ref).float().mean().item() >= 0.99
    assert 0.05 < out.robust_acc < out.clean_acc
    assert [s.label for s in out.stages] == ["apgd-ce", "apgd-t", "fab-t", "square"]


def test_robust_flags_are_the_pointwise_worst_case(digits_mlp) -> None:
    model, x, y = digits_mlp
    x, y = x[:100], y[:100]
    cfg = AutoAttackConfig(eps=0.08, version="custom", attacks=("apgd-ce", "fab-t", "square"), attack_params=CHEAP)
    out = AutoAttack(cfg).run(model, x, y, batch_size=40)
    accs = [s.robust_acc for s in out.stages]
    assert accs == sorted(accs, reverse=True) and accs[-1] == out.robust_acc
    assert sum(s.n_fooled for s in out.stages) == int((out.clean_correct & ~out.robust).sum())
    with torch.no_grad():  # every recorded success is re-checked: x_adv fools the model, in the ball
        pred = model(out.x_adv).argmax(1)
    assert torch.equal(out.robust, pred == y)
    assert ((out.x_adv - x).abs().flatten(1).amax(1) <= 0.08 + 1e-6).all()
    assert out.robust_acc <= out.clean_acc


def test_resumed_evaluation_equals_uninterrupted(digits_mlp, tmp_path: Path) -> None:
    model, x, y = digits_mlp
    x, y = x[:120], y[:120]
    cfg = AutoAttackConfig(eps=0.08, version="custom", attacks=("apgd-ce", "fab-t", "square"), attack_params=CHEAP,
                           seed=3)  # fmt: skip
    full = AutoAttack(cfg).run(model, x, y, batch_size=30)

    class Preempted(Exception):
        pass

    calls = []

    def preempt(label: str, b: int, n: int) -> None:
        calls.append((label, b))
        if label == "fab-t" and b == 0:
            raise Preempted  # killed in the middle of the second stage

    with pytest.raises(Preempted):
        AutoAttack(cfg).run(model, x, y, batch_size=30, state_dir=tmp_path, on_batch=preempt)
    assert (tmp_path / "autoattack_state.json").exists()
    resumed_calls: list[tuple[str, int]] = []
    resumed = AutoAttack(cfg).run(model, x, y, batch_size=30, state_dir=tmp_path,
                                  on_batch=lambda s, b, n: resumed_calls.append((s, b)))  # fmt: skip
    assert torch.equal(resumed.robust, full.robust)
    assert torch.equal(resumed.x_adv, full.x_adv)
    assert [s.n_fooled for s in resumed.stages] == [s.n_fooled for s in full.stages]
    # a different evaluation must not pick up this state
    other = AutoAttackConfig(eps=0.05, version="custom", attacks=("apgd-ce",))
    with pytest.raises(AttackConfigError, match="different evaluation"):
        AutoAttack(other).run(model, x, y, batch_size=30, state_dir=tmp_path)


def test_seed_does_not_touch_global_rng_and_reproduces(digits_mlp) -> None:
    model, x, y = digits_mlp
    x, y = x[:60], y[:60]
    params = {k: v for k, v in CHEAP.items() if k != "fab-t"}
    cfg = AutoAttackConfig(eps=0.08, version="custom", attacks=("apgd-ce", "square"), attack_params=params)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = AutoAttack(cfg).run(model, x, y, batch_size=25)
    after = torch.rand(3)
    assert torch.equal(before, after)
    b = AutoAttack(cfg).run(model, x, y, batch_size=25)
    assert torch.equal(a.x_adv, b.x_adv)


def test_registered_attack_protocol(digits_mlp) -> None:
    model, x, y = digits_mlp
    x, y = x[:50], y[:50]
    attack = create_attack("autoattack", eps=0.08, version="custom", attacks=("apgd-ce",),
                           attack_params={"apgd-ce": {"n_iter": 10}})  # fmt: skip
    res = attack.perturb(model, x, y)
    with torch.no_grad():
        assert torch.equal(res.success, model(res.x_adv).argmax(1) != y)
    assert res.n_forward > 0 and res.n_backward > 0


def test_versions_and_errors() -> None:
    assert [s.label for s in version_specs("plus", "linf")] == ["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t",
                                                                "fab-t"]  # fmt: skip
    rand = version_specs("rand", "linf")
    assert [s.label for s in rand] == ["apgd-ce", "apgd-dlr"] and all(s.params["eot_iter"] == 20 for s in rand)
    standard = {s.label: s.params for s in version_specs("standard", "linf")}
    assert standard["square"]["n_queries"] == 5000 and standard["fab-t"]["n_target_classes"] == 9
    with pytest.raises(AttackConfigError, match="unknown AutoAttack version"):
        AutoAttackConfig(version="fast")
    with pytest.raises(AttackConfigError, match="custom"):
        AutoAttackConfig(version="custom")
    with pytest.raises(AttackConfigError, match="does not run"):
        AutoAttackConfig(attack_params={"fab": {"n_iter": 3}})
    with pytest.raises(AttackConfigError, match="accepted parameters"):
        AutoAttack(AutoAttackConfig(attack_params={"square": {"n_iter": 3}})).run(
            torch.nn.Linear(2, 2), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long)
        )


def test_bf16_search_keeps_fp32_verdicts(digits_mlp) -> None:
    model, x, y = digits_mlp
    x, y = x[:100], y[:100]
    params = {k: v for k, v in CHEAP.items() if k != "fab-t"}
    cfg = dict(eps=0.08, version="custom", attacks=("apgd-ce", "square"), attack_params=params)
    bf16 = AutoAttack(AutoAttackConfig(search_dtype="bf16", **cfg)).run(model, x, y, batch_size=50)
    fp32 = AutoAttack(AutoAttackConfig(**cfg)).run(model, x, y, batch_size=50)
    with torch.no_grad():
        assert torch.equal(bf16.robust, model(bf16.x_adv).argmax(1) == y)  # the reported number is fp32's
    assert abs(bf16.robust_acc - fp32.robust_acc) <= 0.03


@pytest.mark.slow
@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.1), ("l2", 0.8)])
def test_standard_agrees_with_reference_all_points(digits_mlp, norm: str, eps: float) -> None:
    """The full held-out digits set (397 points), both norms: >= 99.5 % flag agreement."""
    pyaa = pytest.importorskip("pyautoattack")
    model, x, y = digits_mlp
    ref = pyaa.AutoAttack(model, eps=eps, norm={"linf": "Linf", "l2": "L2"}[norm], seed=0, version="standard")
    x_ref, _ = ref.run_standard_evaluation(x, y, batch_size=200)
    with torch.no_grad():
        robust_ref = model(x_ref).argmax(1) == y
    out = AutoAttack(AutoAttackConfig(eps=eps, norm=norm, seed=0)).run(model, x, y, batch_size=200)
    assert (out.robust == robust_ref).float().mean().item() >= 0.995
    assert abs(out.robust_acc - robust_ref.float().mean().item()) <= 0.005


@pytest.mark.slow
def test_plus_agrees_with_reference(digits_mlp) -> None:
    pyaa = pytest.importorskip("pyautoattack")
    model, x, y = digits_mlp
    x, y = x[:150], y[:150]
    ref = pyaa.AutoAttack(model, eps=0.1, norm="Linf", seed=0, version="plus")
    x_ref, _ = ref.run_standard_evaluation(x, y, batch_size=150)
    with torch.no_grad():
        robust_ref = model(x_ref).argmax(1) == y
    out = AutoAttack(AutoAttackConfig(eps=0.1, version="plus")).run(model, x, y, batch_size=150)
    assert [s.label for s in out.stages] == ["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"]
    assert (out.robust == robust_ref).float().mean().item() >= 0.99
