"""Prediction-averaging ensembles: k members of one registered architecture, averaged at inference.

papers/004 (Sec. XV, "Ensemble") asks for "the standard ensembling scheme, i.e. averaging the predictions",
and notes that ensembles multiply both training and inference time by k. Here an ensemble is a model like
any other (`create_model("ensemble", member="tiny_cnn", members=3, width=8, ...)`), so its inference cost
(k member forwards) is what the FLOP counter, the inference benchmark and every attack see, and its
training cost is whatever method trains it: the "ensemble" training method trains each member on its own
adversarial examples (independently trained members); any other method trains the averaged model jointly.

``combine="probs"`` averages the members' softmax probabilities and returns their log (so argmax, softmax
and cross entropy act on the averaged probabilities); ``combine="logits"`` averages the logits.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from robustperf.models.base import MODELS, Built, InputShape, ModelError, _check_kwargs


class Ensemble(nn.Module):
    """k member networks; ``forward`` combines them (or runs one member inside `only`).

    Args:
        members: the member networks (same input and output shapes).
        combine: "probs" (log of the mean softmax) or "logits" (mean logits).
    """

    def __init__(self, members: list[nn.Module], combine: str = "probs") -> None:
        super().__init__()
        if combine not in ("probs", "logits"):
            raise ModelError(f"ensemble combine must be 'probs' or 'logits', got {combine!r}")
        self.members = nn.ModuleList(members)
        self.combine = combine
        self._active: int | None = None

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) -> (B, num_classes)
        if self._active is not None:
            return self.members[self._active](x)
        outs = torch.stack([m(x) for m in self.members])  # (k, B, num_classes)
        if self.combine == "logits":
            return outs.mean(dim=0)
        # log(mean_i softmax_i), computed stably as logsumexp_i(log_softmax_i) - log k
        return torch.logsumexp(outs.float().log_softmax(dim=-1), dim=0) - math.log(len(self.members))

    @contextmanager
    def only(self, index: int) -> Iterator[None]:
        """Within the block, ``forward`` is member ``index`` alone (for training members independently)."""
        if not 0 <= index < len(self.members):
            raise IndexError(f"member {index} of an ensemble of {len(self.members)}")
        previous, self._active = self._active, index
        try:
            yield
        finally:
            self._active = previous


def find_ensemble(model: nn.Module) -> Ensemble | None:
    """The `Ensemble` inside ``model`` (behind the normalisation, DDP or compile wrappers), or None."""
    for module in model.modules():
        if isinstance(module, Ensemble):
            return module
    return None


@MODELS.register("ensemble")
def ensemble(*, num_classes: int, input_shape: InputShape, member: str = "tiny_cnn", members: int = 3,
             combine: str = "probs", **member_kwargs: Any) -> nn.Module | Built:
    """``members`` copies of the registered model ``member`` (each with its own initialisation), combined.

    Remaining keyword arguments go to every member (e.g. ``width=8`` for tiny_cnn).
    """
    if members < 1:
        raise ModelError(f"ensemble needs members >= 1, got {members}")
    if member == "ensemble":
        raise ModelError("an ensemble's member cannot itself be an ensemble")
    builder = MODELS.get(member)
    try:
        _check_kwargs(member, builder, member_kwargs)
    except ModelError as exc:
        raise ModelError(f"model 'ensemble' passes its other arguments to its member: {exc} "
                         "(the ensemble's own: member, members, combine)") from None
    built = [builder(num_classes=num_classes, input_shape=input_shape, **member_kwargs) for _ in range(members)]
    nets = [b.net if isinstance(b, Built) else b for b in built]
    net = Ensemble(nets, combine)
    first = built[0]
    return Built(net, first.channels, first.resize_to) if isinstance(first, Built) else net


__all__ = ["Ensemble", "ensemble", "find_ensemble"]
