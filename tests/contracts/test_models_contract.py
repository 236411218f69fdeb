"""The models contract (DESIGN.md / lead's cross-part contracts), checked for every registered model.

`create_model(name, *, num_classes, input_shape, mean, std, **kwargs)` returns an nn.Module that takes
inputs in [0, 1] of `input_shape`, returns (B, num_classes) logits, normalises inside (so mean/std change
the output), carries the normalisation in its state dict, rejects unknown kwargs naming the model, and
round-trips through `state_dict` with `weights_only=True`.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch

from robustperf.models import MODELS, ModelError, count_parameters, create_model

# smallest configuration of each registered model; a newly registered model must be added here
SMALL: dict[str, dict[str, Any]] = {
    "tiny_mlp": {"width": 8},
    "tiny_cnn": {"width": 4},
    "ensemble": {"member": "tiny_cnn", "members": 2, "width": 4},
    "wide_resnet": {"depth": 10, "width": 1},
    "resnet18": {},
    "resnet50": {},
    "preact_resnet18": {},
    "timm": {"model_name": "resnet10t"},
}
# grey 8x8 (digits) for every model, RGB as well for the cheap ones (keeps the file fast on 2 CPU cores)
CASES = [(n, (1, 8, 8)) for n in sorted(SMALL)] + [(n, (3, 16, 16)) for n in ("tiny_mlp", "tiny_cnn", "wide_resnet", "ensemble")]


def test_all_models_are_in_the_contract() -> None:
    assert set(MODELS.names()) == set(SMALL), "add the new model to SMALL"


@pytest.mark.parametrize(("name", "shape"), CASES, ids=[f"{n}-{'x'.join(map(str, s))}" for n, s in CASES])
def test_model_contract(name: str, shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, input_shape=shape, mean=(0.5,) * shape[0], std=(0.25,) * shape[0],
                         **SMALL[name])
    model.eval()
    x = torch.rand(3, *shape)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (3, 5) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert count_parameters(model) > 0
    # normalisation is inside: changing the stored mean changes the output
    state = model.state_dict()
    assert "mean" in state and "std" in state
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    clone = create_model(name, num_classes=5, input_shape=shape, **SMALL[name])
    clone.load_state_dict(torch.load(buffer, weights_only=True))
    clone.eval()
    with torch.no_grad():
        torch.testing.assert_close(clone(x), out)
        clone.mean.fill_(0.0)
        assert not torch.allclose(clone(x), out)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_unknown_kwarg_is_rejected_with_model_name(name: str) -> None:
    with pytest.raises(ModelError, match=f"'{name}'.*'bogus_kwarg'"):
        create_model(name, num_classes=5, bogus_kwarg=1, **SMALL[name])


def test_input_gradient_flows_for_attacks() -> None:
    model = create_model("tiny_cnn", num_classes=5, input_shape=(3, 8, 8), mean=(0.4,) * 3, std=(0.2,) * 3)
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    model(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
