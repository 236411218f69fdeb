"""Prediction-averaging ensembles: the model averages its members, the "ensemble" method trains each member
on its own adversarial examples, and training and inference FLOPs are both k times a member's."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch

from robustperf.config import MethodConfig, RunConfig
from robustperf.cost import accounting, analytic
from robustperf.cost.flops import forward_flops
from robustperf.models import ModelError, create_model, load_run_model
from robustperf.models.ensemble import Ensemble, find_ensemble
from robustperf.registry import RegistryError
from robustperf.training import train
from robustperf.training.methods import MethodConfigError, create_method, flop_iteration

from .test_loop import make_cfg

ATTACK = {"eps": 0.1, "step_size": 0.04, "n_steps": 2}
SHAPE = (1, 8, 8)


def ensemble(members: int = 3, combine: str = "probs") -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("ensemble", num_classes=10, input_shape=SHAPE, member="tiny_cnn", members=members,
                        combine=combine, width=4)


def data(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.rand(n, *SHAPE, generator=g), torch.arange(n) % 10


def test_probs_are_averaged_and_logits_are_averaged() -> None:
    x, _ = data()
    for combine in ("probs", "logits"):
        model = ensemble(combine=combine).eval()
        ens = find_ensemble(model)
        assert isinstance(ens, Ensemble) and len(ens.members) == 3
        with torch.no_grad():
            each = []
            for i in range(3):
                with ens.only(i):
                    each.append(model(x))
            out = model(x)
        stacked = torch.stack(each)
        if combine == "probs":
            assert torch.allclose(out.softmax(1), stacked.softmax(2).mean(0), atol=1e-6)
        else:
            assert torch.allclose(out, stacked.mean(0), atol=1e-6)
        assert not torch.allclose(each[0], each[1])  # members are initialised independently


def test_bad_ensemble_arguments_name_the_fix() -> None:
    with pytest.raises(ModelError, match="width"):
        create_model("ensemble", num_classes=10, input_shape=SHAPE, member="tiny_cnn", widht=4)
    with pytest.raises(ModelError, match="members >= 1"):
        create_model("ensemble", num_classes=10, input_shape=SHAPE, members=0)
    with pytest.raises(ModelError, match="'probs' or 'logits'"):
        create_model("ensemble", num_classes=10, input_shape=SHAPE, combine="vote")
    with pytest.raises(RegistryError, match="tiny_cnn"):
        create_model("ensemble", num_classes=10, input_shape=SHAPE, member="tiny_cnm")
    with pytest.raises(MethodConfigError, match="member_method cannot be 'ensemble'"):
        create_method(MethodConfig(name="ensemble", kwargs={"member_method": "ensemble"}))
    with pytest.raises(MethodConfigError, match="model.name=ensemble"):
        create_method(MethodConfig(name="ensemble", attack=ATTACK)).step(
            create_model("tiny_cnn", num_classes=10, input_shape=SHAPE, width=4), *data())


def test_each_member_trains_on_its_own_adversarial_examples() -> None:
    """Member 0's gradient is exactly what PGD-AT of member 0 alone gives (same random start)."""
    model, (x, y) = ensemble(), data()
    alone = copy.deepcopy(model)
    method = create_method(MethodConfig(name="ensemble", attack=ATTACK), generator=torch.Generator().manual_seed(5))
    out = method.step(model, x, y)
    out.loss.backward()
    pgd = create_method(MethodConfig(name="pgd_at", attack=ATTACK), generator=torch.Generator().manual_seed(5))
    ens_alone = find_ensemble(alone)
    with ens_alone.only(0):
        pgd.step(alone, x, y).loss.backward()
    ens = find_ensemble(model)
    for p, q in zip(ens.members[0].parameters(), ens_alone.members[0].parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-6)
    for member in ens.members:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in member.parameters())


@pytest.mark.parametrize(("member_method", "skipped"), [("pgd_at", 1), ("trades", 2), ("standard", 1), ("fgsm_noproj", 1)])
def test_counted_training_and_inference_flops_are_k_members(member_method: str, skipped: int) -> None:
    k = 3
    cfg = RunConfig().with_overrides({"method.name": "ensemble", "method.attack.n_steps": 2,
                                      "method.kwargs": {"member_method": member_method}})
    single_cfg = RunConfig().with_overrides({"method.name": member_method, "method.attack.n_steps": 2})
    b = accounting.train_flops_per_sample(ensemble(k), cfg, flop_iteration(cfg.method), input_shape=SHAPE)
    one = create_model("tiny_cnn", num_classes=10, input_shape=SHAPE, width=4)
    m = accounting.train_flops_per_sample(one, single_cfg, flop_iteration(single_cfg.method), input_shape=SHAPE)
    assert b.forward_flops == pytest.approx(k * m.forward_flops)  # inference: k member forwards
    assert b.per_sample == pytest.approx(k * m.per_sample)  # training: k members' iterations
    assert b.attack_flops == pytest.approx(k * m.attack_flops)
    # in units of the ensemble's forward pass, the passes are the member method's (analytic table too)
    assert b.passes == pytest.approx(m.passes)
    assert b.analytic_passes == analytic.forward_equivalents(member_method, 2) == m.analytic_passes
    # exactly, once the weight backward's skipped input gradients of the first conv are taken off (one per
    # outer forward whose input needs no gradient: TRADES has two, the clean and the adversarial one)
    first_conv = 2 * 1 * 9 * 4 * 8 * 8  # tiny_cnn width 4 on 1x8x8: 1 -> 4 channels, 3x3, full resolution
    assert b.passes == pytest.approx(b.analytic_passes - skipped * first_conv / m.forward_flops, rel=1e-9)


def test_ensemble_default_member_matches_the_analytic_default() -> None:
    method = create_method(MethodConfig(name="ensemble"))
    assert method.settings.member_method == analytic.ENSEMBLE_DEFAULT_MEMBER


def test_an_ensemble_run_records_training_and_inference_cost(tmp_path: Path) -> None:
    cfg = make_cfg(model__name="ensemble", model__kwargs={"member": "tiny_cnn", "members": 2, "width": 4},
                   method__name="ensemble", data__n_train=64, optim__epochs=1)
    run = train(cfg, tmp_path)
    record = json.loads((run.path / "result.json").read_text())
    assert record["status"] == "finished"
    model, _ = load_run_model(run.path, which="last")
    assert isinstance(find_ensemble(model), Ensemble) and len(find_ensemble(model).members) == 2
    member = create_model("tiny_cnn", num_classes=10, input_shape=SHAPE, width=4)
    cost = record["cost"]
    assert cost["inference_flops_per_image"] == pytest.approx(2 * forward_flops(member, SHAPE))
    # PGD-2 AT per member: 2 x (2 steps x 2F + 3F) member forwards, a little under (first conv's input grad)
    assert cost["flops_per_sample"] <= 2 * 7 * forward_flops(member, SHAPE)
    assert cost["flops_per_sample"] == pytest.approx(2 * 7 * forward_flops(member, SHAPE), rel=0.1)
    assert math.isfinite(record["final"]["robust_acc"])


def test_the_ensemble_method_on_a_plain_model_fails_before_the_run_starts(tmp_path: Path) -> None:
    cfg = make_cfg(method__name="ensemble")
    with pytest.raises(MethodConfigError, match="model.name=ensemble"):
        train(cfg, tmp_path)
    assert not (tmp_path / cfg.run_id / "result.json").exists()
