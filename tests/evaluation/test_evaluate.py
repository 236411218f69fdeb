"""`evaluate` and `benchmark`: results, saved outputs, several eps, flags on real triggers, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import robustperf
from robustperf.evaluation import EvaluationError, evaluate

CHEAP = {"apgd-ce": {"n_iter": 25}, "apgd-t": {"n_iter": 25, "n_target_classes": 3},
         "fab-t": {"n_iter": 25, "n_target_classes": 3}, "square": {"n_queries": 300}}  # fmt: skip


def test_evaluate_autoattack_writes_results_and_pairs(digits_mlp, tmp_path: Path) -> None:
    model, x, y = digits_mlp
    x, y = x[:120], y[:120]
    res = robustperf.evaluate(model, x, y, eps=0.08, batch_size=50, out_dir=tmp_path, attack_params=CHEAP)
    with torch.no_grad():
        clean = model(x).argmax(1) == y
    assert res.clean_acc == clean.float().mean().item()
    assert list(res.per_attack) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert res.robust_acc == res.per_attack["square"]["robust_acc"] == res.robust_flags.float().mean().item()
    assert 0 < res.robust_acc < res.clean_acc
    assert all(v["seconds"] >= 0 for v in res.per_attack.values())
    assert not any(f.fired for f in res.flags.values()), {k: f.detail for k, f in res.flags.items()}
    summary = json.loads((tmp_path / "result.json").read_text())
    assert summary["robust_acc"] == res.robust_acc and summary["flags"]["zero_gradients"]["fired"] is False
    npz = np.load(tmp_path / "adversarial.npz")
    fooled = (res.clean_flags & ~res.robust_flags).nonzero().squeeze(1).numpy()
    assert np.array_equal(npz["index"], fooled) and len(fooled) > 0
    assert np.array_equal(npz["x_clean"], x[fooled].numpy()) and np.array_equal(npz["y"], y[fooled].numpy())
    x_adv = torch.from_numpy(npz["x_adv"])
    with torch.no_grad():
        assert (model(x_adv).argmax(1) != y[fooled]).all()
    assert ((x_adv - x[fooled]).abs().flatten(1).amax(1) <= 0.08 + 1e-6).all()
    # a second call resumes from the finished state: same flags, no attack work redone
    again = evaluate(model, x, y, eps=0.08, batch_size=50, out_dir=tmp_path, attack_params=CHEAP, sanity_checks=False)
    assert torch.equal(again.robust_flags, res.robust_flags)


def test_several_eps_in_one_call(digits_mlp) -> None:
    model, x, y = digits_mlp
    x, y = x[:100], y[:100]
    res = evaluate(model, x, y, attack="pgd", eps=0.05, eps_list=[0.02, 0.1], batch_size=100,
                   attack_params={"pgd": {"n_steps": 10}})  # fmt: skip
    assert res.attack == "pgd" and list(res.per_attack) == ["pgd"]
    accs = [res.per_eps[e]["robust_acc"] for e in (0.02, 0.05, 0.1)]
    assert accs[0] > accs[1] > accs[2]
    assert res.robust_acc == accs[1]
    assert not res.flags["eps_not_monotone"].fired


def test_flags_fire_on_a_gradient_masked_model(digits_mlp, quantized_mlp) -> None:
    _, x, y = digits_mlp
    x, y = x[:80], y[:80]
    res = evaluate(quantized_mlp, x, y, attack=["apgd-ce", "square"], eps=0.1, eps_list=[0.2], batch_size=80,
                   attack_params={"apgd-ce": {"n_iter": 10}, "square": {"n_queries": 300}})  # fmt: skip
    assert res.flags["zero_gradients"].fired
    assert res.flags["square_beats_white_box"].fired
    # without gradients APGD-CE gets only what its random start stumbles on; Square does the work
    assert res.per_attack["apgd-ce"]["robust_acc"] > res.robust_acc + 0.2
    assert not res.flags["randomized"].fired and not res.flags["softmax_output"].fired


def test_rand_version_on_a_randomised_model(digits_mlp, noisy_mlp) -> None:
    _, x, y = digits_mlp
    x, y = x[:40], y[:40]
    params = {"apgd-ce": {"n_iter": 5, "eot_iter": 2}, "apgd-dlr": {"n_iter": 5, "eot_iter": 2}}
    res = evaluate(noisy_mlp, x, y, version="rand", eps=0.1, batch_size=40, attack_params=params)
    assert list(res.per_attack) == ["apgd-ce", "apgd-dlr"] and res.version == "rand"
    assert res.flags["randomized"].fired
    assert res.robust_acc <= res.clean_acc


def test_mode_is_restored_and_errors_name_the_fix(digits_mlp) -> None:
    model, x, y = digits_mlp
    model.train()
    try:
        evaluate(model, x[:20], y[:20], attack="pgd", eps=0.05, sanity_checks=False,
                 attack_params={"pgd": {"n_steps": 2}})  # fmt: skip
        assert model.training
    finally:
        model.eval()
    with pytest.raises(EvaluationError, match="labels"):
        evaluate(model, x[:5], y[:4])
    with pytest.raises(EvaluationError, match=r"\[0, 1\]"):
        evaluate(model, x[:5] * 3, y[:5])
    with pytest.raises(KeyError, match="pgd"):  # unknown attacks list the registered ones
        evaluate(model, x[:5], y[:5], attack="pgdd")
    with pytest.raises(EvaluationError, match=r"no setting attacks.*attack=\[\.\.\.\]"):  # the old alias is gone
        evaluate(model, x[:5], y[:5], attacks=["pgd"])


def test_an_eval_spec_and_its_fields_as_keywords_evaluate_the_same(digits_mlp) -> None:
    from robustperf.evaluation import EvalSpec

    model, x, y = digits_mlp
    spec = EvalSpec(attack=["pgd"], eps=0.05, sanity_checks=False, attack_params={"pgd": {"n_steps": 2}})
    assert spec.attack == ("pgd",) and spec == EvalSpec.of(None, {"attack": ("pgd",), "eps": 0.05,
                                                                  "sanity_checks": False,
                                                                  "attack_params": {"pgd": {"n_steps": 2}}})
    a = evaluate(model, x[:30], y[:30], spec, batch_size=15)
    b = evaluate(model, x[:30], y[:30], attack="pgd", eps=0.05, sanity_checks=False,
                 attack_params={"pgd": {"n_steps": 2}}, batch_size=15)
    assert a.robust_acc == b.robust_acc and torch.equal(a.robust_flags, b.robust_flags)
    assert evaluate(model, x[:30], y[:30], spec, eps=0.0, batch_size=15).robust_acc == a.clean_acc  # keyword wins


def test_benchmark_on_a_dataset(digits_mlp) -> None:
    data = pytest.importorskip("robustperf.data")
    if not hasattr(data, "eval_tensors"):
        pytest.skip("robustperf.data.eval_tensors not available yet")
    from robustperf.evaluation import benchmark

    model, x, y = digits_mlp
    ds = torch.utils.data.TensorDataset(x, y)
    res = benchmark(model, ds, n_examples=40, threat_model="linf", eps=0.05, batch_size=40,
                    attack_params=CHEAP)  # fmt: skip
    assert res.n_examples == 40 and res.attack == "autoattack" and 0 <= res.robust_acc <= res.clean_acc
