"""The model front door: a registry of builders and the wrapper every model is returned in.

Every architecture sees inputs in [0, 1]; `NormalizedModel` subtracts the data set's mean and divides by
its std inside the model, so attacks, eps-balls and clipping all live in pixel space (DESIGN.md, "inputs
in [0, 1]"). The wrapper also resizes inputs for models built for another resolution (ViTs) and repeats a
single grey channel for networks that need three.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustperf.registry import Registry

InputShape = tuple[int, int, int]
ModelBuilder = Callable[..., Any]  # returns an nn.Module, or a `Built` when the net needs other inputs

MODELS: Registry[ModelBuilder] = Registry("model")


class ModelError(ValueError):
    """A model that cannot be built as asked; the message names the accepted arguments."""


class NormalizedModel(nn.Module):
    """`net((resize(repeat(x)) - mean) / std)` for inputs in [0, 1].

    Args:
        net: the architecture, fed normalised inputs.
        mean: per-channel mean of the data (None: no shift).
        std: per-channel std of the data (None: no scaling).
        in_channels: channels of the inputs this wrapper receives.
        net_channels: channels `net` expects; 1 -> 3 is done by repeating the grey channel.
        resize_to: (H, W) that `net` needs, or None to pass inputs through at their own size.
    """

    mean: Tensor
    std: Tensor

    def __init__(
        self,
        net: nn.Module,
        *,
        mean: tuple[float, ...] | None,
        std: tuple[float, ...] | None,
        in_channels: int,
        net_channels: int | None = None,
        resize_to: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        net_channels = net_channels or in_channels
        if net_channels != in_channels and not (in_channels == 1 and net_channels == 3):
            raise ModelError(f"cannot feed {in_channels}-channel inputs to a model that needs {net_channels}")
        self.net = net
        self.in_channels = in_channels
        self.net_channels = net_channels
        self.resize_to = resize_to
        # buffers always exist (identity when None) so checkpoints have the same keys either way
        self.register_buffer("mean", _stat(mean, 0.0, in_channels, "mean").view(1, -1, 1, 1))
        self.register_buffer("std", _stat(std, 1.0, in_channels, "std").view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:  # (B, C, H, W) in [0, 1] -> (B, num_classes)
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        if self.net_channels != self.in_channels:
            x = x.expand(-1, self.net_channels, -1, -1)
        if self.resize_to is not None and tuple(x.shape[-2:]) != self.resize_to:
            x = F.interpolate(x, size=self.resize_to, mode="bilinear", align_corners=False)
        return self.net(x)


def _stat(values: tuple[float, ...] | None, default: float, channels: int, what: str) -> Tensor:
    if values is None:
        return torch.full((channels,), default)
    vals = tuple(float(v) for v in values)
    if len(vals) == 1:
        vals = vals * channels
    if len(vals) != channels:
        raise ModelError(f"{what} has {len(vals)} values but the inputs have {channels} channels")
    if what == "std" and min(vals) <= 0:
        raise ModelError(f"std must be positive, got {vals}")
    return torch.tensor(vals, dtype=torch.float32)


@dataclass(frozen=True)
class Built:
    """What a builder returns when the network needs other channels or another input size than the data.

    Attributes:
        net: the architecture.
        channels: input channels `net` needs (1-channel data is repeated to 3).
        resize_to: (H, W) `net` needs, or None for any size.
    """

    net: nn.Module
    channels: int
    resize_to: tuple[int, int] | None


def accepted_kwargs(builder: ModelBuilder) -> list[str]:
    """The keyword arguments a builder takes beyond num_classes and input_shape."""
    params = inspect.signature(builder).parameters
    return [n for n in params if n not in ("num_classes", "input_shape")]


def _check_kwargs(name: str, builder: ModelBuilder, kwargs: dict[str, Any]) -> None:
    params = inspect.signature(builder).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return  # the builder passes the rest on and checks them itself (the ensemble: to its member)
    allowed = accepted_kwargs(builder)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ModelError(
            f"model {name!r} got unknown argument(s) {', '.join(map(repr, unknown))}; "
            f"it accepts: {', '.join(allowed) or '(none)'}"
        )


def create_model(
    name: str,
    *,
    num_classes: int,
    input_shape: Sequence[int] = (3, 32, 32),
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model wrapped so that it takes inputs in [0, 1].

    Args:
        name: a name from `MODELS` (e.g. "wide_resnet"), or "timm/<model_name>" for any timm model.
        num_classes: outputs of the classifier.
        input_shape: (C, H, W) of the inputs.
        mean: per-channel data mean used for normalisation inside the model.
        std: per-channel data std.
        **kwargs: architecture arguments (e.g. depth, width, activation); unknown ones are errors.

    Returns:
        A `NormalizedModel` (in train mode) around the architecture.

    Raises:
        ModelError: bad arguments (the message lists the accepted ones).
        RegistryError: unknown name (the message lists the registered ones).
    """
    if name.startswith("timm/"):
        if "model_name" in kwargs:
            raise ModelError(f"{name!r} already names the timm model; drop model_name or use name='timm'")
        name, kwargs = "timm", {"model_name": name.split("/", 1)[1], **kwargs}
    builder = MODELS.get(name)
    _check_kwargs(name, builder, kwargs)
    if num_classes < 1:
        raise ModelError(f"num_classes must be >= 1, got {num_classes}")
    if len(input_shape) != 3:
        raise ModelError(f"input_shape must be (C, H, W), got {input_shape}")
    shape: InputShape = (int(input_shape[0]), int(input_shape[1]), int(input_shape[2]))
    if name != "timm":  # timm models are sized by their own names
        _check_size(name, builder, num_classes, shape, kwargs)
    built = builder(num_classes=num_classes, input_shape=shape, **kwargs)
    net, net_channels, resize_to = (built.net, built.channels, built.resize_to) if isinstance(built, Built) else (
        built, shape[0], None)
    return NormalizedModel(net, mean=mean, std=std, in_channels=shape[0], net_channels=net_channels,
                           resize_to=resize_to)


def _check_size(name: str, builder: ModelBuilder, num_classes: int, shape: InputShape, kwargs: dict[str, Any]) -> None:
    """Refuse, before allocating it, a model whose fp32 weights alone exceed this machine's memory
    (``width=1000000`` used to die in the allocator with a traceback). Built on the meta device: no memory."""
    try:
        with torch.device("meta"):
            built = builder(num_classes=num_classes, input_shape=shape, **kwargs)
    except Exception:  # a builder that cannot run on meta tensors (or bad kwargs): the real build reports it
        return
    net = built.net if isinstance(built, Built) else built
    n_params = sum(p.numel() for p in net.parameters())
    memory = _memory_bytes()
    if memory is not None and n_params * 4 > memory:
        args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        raise ModelError(f"model {name!r} ({args}) has {n_params:,} parameters, {n_params * 4 / 2**30:,.0f} GiB in "
                         f"fp32, more than this machine's {memory / 2**30:,.0f} GiB of memory: lower model.kwargs")


def _memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (buffers such as the normalisation stats and BN statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def make_activation(name: str) -> nn.Module:
    """relu | gelu | silu (the activations compared by Debenedetti et al. 2023 and Bartoldson et al. 2024)."""
    table: dict[str, Callable[[], nn.Module]] = {"relu": lambda: nn.ReLU(inplace=True), "gelu": nn.GELU,
                                                 "silu": lambda: nn.SiLU(inplace=True)}
    if name not in table:
        raise ModelError(f"activation {name!r} is not supported; use one of {', '.join(table)}")
    return table[name]()
