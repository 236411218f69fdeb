"""What `evaluate` accepts: tensors, a DataLoader or a Dataset; a model fed normalised inputs; several devices.

Everything is turned into the one form the attacks run on, before any attack starts: (x, y) tensors on the
CPU with x in [0, 1], and a module mapping [0, 1] images to logits on its device. A DataLoader is read
once, in its own order (a non-shuffling loader gives exactly the tensors' result); a Dataset is read in
index order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

Devices = torch.device | str | Sequence[torch.device | str] | None


class InputError(ValueError):
    """Data, normalisation or devices `evaluate` cannot use; the message names the fix."""


def as_tensors(data: Tensor | DataLoader | Dataset | Any, y: Tensor | None,
               max_examples: int | None = None) -> tuple[Tensor, Tensor]:
    """(x, y) on the CPU from tensors, a DataLoader yielding (x, y) batches, or a Dataset of (x, y) pairs.

    Args:
        data: images (N, C, H, W) with `y` given, or a DataLoader / Dataset (then `y` must be None).
        y: labels when `data` is a tensor.
        max_examples: keep only the first this many points (None: all).

    Raises:
        InputError: labels missing or given twice, a batch that is not an (x, y) pair, or no points.
    """
    if max_examples is not None and max_examples < 1:
        raise InputError(f"max_examples must be >= 1 or None, got {max_examples}")
    if isinstance(data, Tensor):
        if y is None:
            raise InputError("labels missing: pass evaluate(model, x, y) with tensors, or a DataLoader/Dataset alone")
        return (data, y) if max_examples is None else (data[:max_examples], y[:max_examples])
    if y is not None:
        raise InputError(f"a {type(data).__name__} carries its labels: pass evaluate(model, loader) without y")
    if isinstance(data, DataLoader):
        return _collect(data, max_examples, type(data).__name__)
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        return _collect(DataLoader(data, batch_size=256, shuffle=False), max_examples, type(data).__name__)
    raise InputError(f"cannot evaluate on a {type(data).__name__}: pass (x, y) tensors, a DataLoader or a Dataset")


def _collect(batches: Iterable[Any], max_examples: int | None, what: str) -> tuple[Tensor, Tensor]:
    xs: list[Tensor] = []
    ys: list[Tensor] = []
    n = 0
    for batch in batches:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise InputError(f"the {what} yields {type(batch).__name__}, not (images, labels) pairs: wrap it so "
                             "each item is (x, y)")
        xb, yb = torch.as_tensor(batch[0]), torch.as_tensor(batch[1])
        xs.append(xb.detach().cpu().float())
        ys.append(yb.detach().cpu().long().reshape(-1))
        n += int(xb.shape[0])
        if max_examples is not None and n >= max_examples:
            break
    if not xs:
        raise InputError(f"the {what} is empty: give it at least one (x, y) pair")
    x, y = torch.cat(xs), torch.cat(ys)
    return (x, y) if max_examples is None else (x[:max_examples], y[:max_examples])


class Normalize(nn.Module):
    """`model((x - mean) / std)`: lets a model trained on normalised inputs be attacked in [0, 1] pixel space."""

    mean: Tensor
    std: Tensor

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std) or not mean:
            raise InputError(f"normalize needs one mean and one std per channel, got {len(mean)} and {len(std)}")
        if min(std) <= 0:
            raise InputError(f"normalize's std must be positive, got {tuple(std)}")
        self.model = model
        self.register_buffer("mean", torch.tensor([float(m) for m in mean]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor([float(s) for s in std]).view(1, -1, 1, 1))
        self.train(model.training)  # the wrapper starts in the model's mode, so evaluate restores that mode

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) in [0, 1] -> logits
        return self.model((x - self.mean.to(x.dtype)) / self.std.to(x.dtype))


def with_normalize(model: nn.Module, normalize: tuple[Sequence[float], Sequence[float]] | None) -> nn.Module:
    """The model wrapped in `Normalize` when ``normalize=(mean, std)`` is given, else the model itself."""
    if normalize is None:
        return model
    if len(normalize) != 2:
        raise InputError("normalize must be (mean, std), e.g. ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616))")
    mean, std = normalize
    return Normalize(model, tuple(mean), tuple(std))


def place(model: nn.Module, device: Devices) -> tuple[nn.Module, torch.device | None]:
    """The model to run and the device of its inputs: one device, or a list of CUDA devices (data parallel).

    Returns (model, None) when `device` is None (the caller keeps the model's own device).
    """
    if device is None or isinstance(device, (str, torch.device)):
        return model, (torch.device(device) if device is not None else None)
    devices = [torch.device(d) for d in device]
    if not devices:
        raise InputError("the device list is empty: pass e.g. device=['cuda:0', 'cuda:1'] or device='cpu'")
    if len(devices) == 1:
        return model, devices[0]
    if any(d.type != "cuda" for d in devices):
        raise InputError(f"a list of several devices must all be CUDA devices, got {[str(d) for d in devices]}: "
                         "pass one device for CPU")
    first = devices[0]
    parallel = nn.DataParallel(model.to(first), device_ids=[d.index or 0 for d in devices], output_device=first)
    parallel.train(model.training)
    return parallel, first


__all__ = ["Devices", "InputError", "Normalize", "as_tensors", "place", "with_normalize"]
