"""`evaluate` on anything: a DataLoader or a Dataset equals the tensors, `normalize=` equals a model that
normalises inside, and bad inputs fail in one line before any attack runs."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from robustperf.evaluation import benchmark, evaluate
from robustperf.evaluation.inputs import InputError, Normalize, as_tensors, place

APGD = {"attack": "apgd-ce", "eps": 0.08, "attack_params": {"apgd-ce": {"n_iter": 10}}, "batch_size": 40}


def _same(a, b) -> None:
    assert a.clean_acc == b.clean_acc and a.robust_acc == b.robust_acc
    assert torch.equal(a.robust_flags, b.robust_flags) and torch.equal(a.x_adv, b.x_adv)


def test_a_dataloader_and_a_dataset_give_the_tensors_result(digits_mlp) -> None:
    model, x, y = digits_mlp
    x, y = x[:80], y[:80]
    from_tensors = evaluate(model, x, y, **APGD)
    from_loader = evaluate(model, DataLoader(TensorDataset(x, y), batch_size=17), **APGD)
    from_dataset = evaluate(model, TensorDataset(x, y), **APGD)
    _same(from_tensors, from_loader)
    _same(from_tensors, from_dataset)
    assert 0 < from_tensors.robust_acc < from_tensors.clean_acc  # the attack did something
    first = evaluate(model, DataLoader(TensorDataset(x, y), batch_size=17), max_examples=30, **APGD)
    _same(first, evaluate(model, x[:30], y[:30], **APGD))


def test_normalize_wraps_a_model_trained_on_normalised_inputs(digits_mlp) -> None:
    model, x, y = digits_mlp
    x, y = x[:60], y[:60]
    mean, std = (0.3,), (0.2,)
    on_normalised = nn.Sequential(nn.Flatten(), *list(model.children())[1:])  # same weights
    # a model that expects (x - mean) / std: undo it first, so its pixel-space answers equal the MLP's
    expects_normalised = nn.Sequential(_Affine(std[0], mean[0]), on_normalised).eval()
    wrapped = evaluate(expects_normalised, x, y, normalize=(mean, std), **APGD)
    _same(wrapped, evaluate(model, x, y, **APGD))
    assert expects_normalised.training is False  # the mode is restored through the wrapper


class _Affine(nn.Module):
    def __init__(self, scale: float, shift: float) -> None:
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


def test_benchmark_takes_a_dataloader(digits_mlp) -> None:
    model, x, y = digits_mlp
    loader = DataLoader(TensorDataset(x[:50], y[:50]), batch_size=25)
    res = benchmark(model, loader, n_examples=20, eps=0.05, attack_params={
        "apgd-ce": {"n_iter": 5}, "apgd-t": {"n_iter": 5, "n_target_classes": 2},
        "fab-t": {"n_iter": 5, "n_target_classes": 2}, "square": {"n_queries": 20}})
    assert res.n_examples == 20
    with torch.no_grad():
        assert res.clean_acc == (model(x[:20]).argmax(1) == y[:20]).float().mean().item()


def test_bad_inputs_fail_in_one_line(digits_mlp) -> None:
    model, x, y = digits_mlp
    loader = DataLoader(TensorDataset(x, y), batch_size=10)
    cases = [
        (lambda: as_tensors(x, None), "labels missing"),
        (lambda: as_tensors(loader, y), "carries its labels"),
        (lambda: as_tensors(DataLoader(TensorDataset(x[:0], y[:0])), None), "is empty"),
        (lambda: as_tensors(DataLoader(x[:4]), None), "not (images, labels) pairs"),
        (lambda: as_tensors(42, None), "cannot evaluate on a int"),
        (lambda: Normalize(model, (0.1, 0.2), (0.3,)), "one mean and one std per channel"),
        (lambda: place(model, ["cpu", "cpu"]), "must all be CUDA devices"),
        (lambda: place(model, []), "device list is empty"),
    ]
    for call, text in cases:
        with pytest.raises(InputError, match=text.replace("(", r"\(").replace(")", r"\)")) as err:
            call()
        assert "\n" not in str(err.value)
    assert place(model, ["cpu"])[1] == torch.device("cpu")
