"""Each sanity flag fires on a model built to trigger it and stays quiet on a normal tiny model."""

from __future__ import annotations

from torch import nn

from robustperf.attacks import checks


def test_randomized(digits_mlp, noisy_mlp) -> None:
    model, x, _ = digits_mlp
    assert checks.check_randomized(noisy_mlp, x[:64]).fired
    assert not checks.check_randomized(model, x[:64]).fired


def test_softmax_output(digits_mlp) -> None:
    model, x, _ = digits_mlp
    assert checks.check_softmax_output(nn.Sequential(model, nn.Softmax(dim=1)), x[:64]).fired
    assert not checks.check_softmax_output(model, x[:64]).fired


def test_zero_gradients(digits_mlp, quantized_mlp) -> None:
    model, x, y = digits_mlp
    flag = checks.check_zero_gradients(quantized_mlp, x[:64], y[:64])
    assert flag.fired and flag.value == 1.0
    quiet = checks.check_zero_gradients(model, x[:64], y[:64])
    assert not quiet.fired and quiet.value == 0.0


def test_square_beats_white_box() -> None:
    fired = checks.check_square_beats_white_box([("apgd-ce", 0.50), ("apgd-t", 0.48), ("square", 0.40)])
    assert fired.fired and abs(fired.value - 0.08) < 1e-9
    assert not checks.check_square_beats_white_box([("apgd-ce", 0.50), ("square", 0.499)]).fired
    assert not checks.check_square_beats_white_box([("square", 0.1)]).fired


def test_eps_monotone() -> None:
    assert checks.check_eps_monotone({0.01: 0.5, 0.03: 0.6, 0.1: 0.2}).fired  # rises
    assert checks.check_eps_monotone({0.01: 0.5, 0.1: 0.5}).fired  # never falls
    assert not checks.check_eps_monotone({0.01: 0.6, 0.03: 0.4, 0.1: 0.0}).fired
    assert not checks.check_eps_monotone({0.03: 0.4}).fired


def test_pgd_weaker_than_fgsm(digits_mlp, misleading_mlp) -> None:
    model, x, y = digits_mlp
    x, y = x[:150], y[:150]
    pgd, fgsm = checks.pgd_and_fgsm_accuracy(misleading_mlp, x, y, eps=0.1)
    assert checks.check_pgd_vs_fgsm(pgd, fgsm).fired
    pgd, fgsm = checks.pgd_and_fgsm_accuracy(model, x, y, eps=0.1)
    assert not checks.check_pgd_vs_fgsm(pgd, fgsm).fired


def test_every_flag_is_documented() -> None:
    names = {"randomized", "softmax_output", "zero_gradients", "square_beats_white_box", "eps_not_monotone",
             "pgd_weaker_than_fgsm"}  # fmt: skip
    assert set(checks.FLAG_DOCS) == names
    assert all(len(doc) > 20 for doc in checks.FLAG_DOCS.values())
