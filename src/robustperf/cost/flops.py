"""A small FLOP counter that runs under ``torch.autograd.grad`` and on the meta device.

REFERENCE.md section 3 ("FLOPs"): we count what runs with the formula table of
``torch.utils.flop_counter`` (``flop_registry``: matmuls, convolutions and their
backwards, scaled-dot-product attention) inside our own ``TorchDispatchMode``.
The stock ``FlopCounterMode`` tracks modules with hooks that crash when the
backward is driven by ``torch.autograd.grad`` w.r.t. a leaf input (pytorch
issue 131753 - exactly PGD), and older releases count CPU SDPA as zero (issue
195460); this mode has neither problem because it only looks at aten calls.

Conventions: one multiply-add = 2 FLOPs (the formula table's convention; so
WRN-28-10 is 10.49 GFLOPs per 32x32 image, i.e. ~5.2 GMACs). Only ops with a
formula count (elementwise ops, norms and activations are < 1 % for CNNs/ViTs
and are ignored, as in the papers' FLOP figures). An op runs in the "backward"
phase when the autograd engine is executing a node (``_current_autograd_node``).

Usage::

    with FlopCounter() as counter:
        loss = model(x).sum()
        loss.backward()
    counter.result().total, counter.result().backward

Everything works on ``torch.device("meta")`` tensors, where nothing is computed,
so counting a WRN-70-16 iteration costs milliseconds; use `meta_copy`.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

FORWARD = "forward"
BACKWARD = "backward"


@dataclass(frozen=True)
class FlopCount:
    """FLOPs counted in one window, split by phase and by aten op.

    Attributes:
        forward: FLOPs of ops run outside the autograd engine.
        backward: FLOPs of ops run by the autograd engine (``backward()`` / ``autograd.grad``).
        by_op: ``{(phase, op_name): flops}``.
        calls: ``{(phase, op_name): number of calls}``.
    """

    forward: int
    backward: int
    by_op: Mapping[tuple[str, str], int] = field(default_factory=dict)
    calls: Mapping[tuple[str, str], int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.forward + self.backward

    def scaled(self, factor: float) -> dict[str, float]:
        """Forward/backward/total multiplied by ``factor`` (e.g. 1 / batch size)."""
        return {"forward": self.forward * factor, "backward": self.backward * factor, "total": self.total * factor}

    def op_table(self) -> list[dict[str, Any]]:
        """Rows ``{phase, op, flops, calls}``, largest first (for printing and JSON)."""
        rows = [
            {"phase": phase, "op": op, "flops": n, "calls": self.calls.get((phase, op), 0)}
            for (phase, op), n in self.by_op.items()
        ]
        return sorted(rows, key=lambda r: -r["flops"])


def _numel(shape: Any) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def conv_backward_flops(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    bias_sizes: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    transposed: bool,
    output_padding: Any,
    groups: int,
    output_mask: Any,
    *,
    out_val: Any = None,
    **_: Any,
) -> int:
    """Group-aware FLOPs of ``aten.convolution_backward``: forward FLOPs per gradient asked for.

    Each of grad-input and grad-weight is one convolution with the same MAC count as
    the forward. The stock formula ignores ``groups`` for grad-weight (it counts a
    depthwise conv's weight gradient ``groups`` times too high), so we replace it.
    """
    # weight: (C_out, C_in / groups, kh, kw), or (C_in, C_out / groups, kh, kw) when transposed.
    per_output = _numel(weight.shape[1:])
    big = x if transposed else grad_out  # the side whose every element is one dot product
    forward = 2 * _numel(big.shape) * per_output
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def default_formulas() -> dict[Any, Callable[..., int]]:
    """``torch.utils.flop_counter.flop_registry`` with our group-aware convolution backward.

    The CPU flash-attention kernels (what ``F.scaled_dot_product_attention`` runs on CPU) are
    missing from older tables (pytorch issue 195460: CPU SDPA counted as zero); they take
    (query, key, value, ...) and (grad_out, query, key, value, ...) like the CUDA kernels, so
    the generic SDPA formulas apply.
    """
    formulas: dict[Any, Callable[..., int]] = dict(flop_registry)
    formulas[torch.ops.aten.convolution_backward] = conv_backward_flops
    aten = torch.ops.aten
    cpu_ops: dict[str, Callable[..., int]] = {
        "_scaled_dot_product_flash_attention_for_cpu": flop_counter.sdpa_flop,
        "_scaled_dot_product_flash_attention_for_cpu_backward": flop_counter.sdpa_backward_flop,
    }
    for name, formula in cpu_ops.items():
        if hasattr(aten, name):
            formulas.setdefault(getattr(aten, name), formula)
    return formulas


class FlopCounter(TorchDispatchMode):
    """Dispatch mode that adds up ``flop_registry`` formulas for every aten op that runs.

    Args:
        formulas: op-packet -> formula table called as ``f(*args, out_val=out, **kwargs)``;
            default: `default_formulas` (the stock table, group-aware convolution backward).
    """

    def __init__(self, formulas: Mapping[Any, Callable[..., int]] | None = None) -> None:
        super().__init__()
        self._formulas = default_formulas() if formulas is None else dict(formulas)
        self._flops: Counter[tuple[str, str]] = Counter()
        self._calls: Counter[tuple[str, str]] = Counter()

    def reset(self) -> None:
        self._flops.clear()
        self._calls.clear()

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        packet = func._overloadpacket
        formula = self._formulas.get(packet)
        if formula is None:
            # Under inference_mode composite ops (aten.linear, aten.conv2d) reach us undecomposed:
            # run their decomposition inside this mode so the mm/conv they consist of are counted.
            with self:
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
            return func(*args, **kwargs)
        out = func(*args, **kwargs)
        # The autograd engine sets the current node while it runs a backward function.
        phase = BACKWARD if torch._C._current_autograd_node() is not None else FORWARD
        key = (phase, str(packet))
        self._flops[key] += int(formula(*args, **kwargs, out_val=out))
        self._calls[key] += 1
        return out

    def result(self) -> FlopCount:
        """The counts so far (a frozen snapshot)."""
        fwd = sum(n for (phase, _), n in self._flops.items() if phase == FORWARD)
        bwd = sum(n for (phase, _), n in self._flops.items() if phase == BACKWARD)
        return FlopCount(fwd, bwd, dict(self._flops), dict(self._calls))


def count_flops(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> FlopCount:
    """Run ``fn(*args, **kwargs)`` under a `FlopCounter` and return what it counted."""
    with FlopCounter() as counter:
        fn(*args, **kwargs)
    return counter.result()


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DistributedDataParallel and ``torch.compile`` wrappers."""
    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = cast(torch.nn.Module, model._orig_mod)
        else:
            return model


def meta_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose parameters and buffers live on the meta device.

    No weights are copied (the memo maps every tensor to an empty meta tensor),
    so this is instant and free even for a model on a busy GPU. Modes
    (train/eval) and ``requires_grad`` flags are kept; DDP and torch.compile wrappers are removed.
    """
    model = unwrap_model(model)
    memo: dict[int, Any] = {}
    for p in model.parameters():
        memo[id(p)] = torch.nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
    for b in model.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    return copy.deepcopy(model, memo)


def forward_flops(model: torch.nn.Module, input_shape: tuple[int, ...], *, batch_size: int = 2) -> float:
    """Forward FLOPs per sample of ``model`` in eval mode, counted on the meta device.

    Args:
        model: any module (its weights are not touched).
        input_shape: one sample's shape, e.g. (3, 32, 32).
        batch_size: samples in the counted batch (FLOPs are linear in it; > 1 keeps BatchNorm happy).
    """
    meta = meta_copy(model).eval()
    x = torch.empty((batch_size, *input_shape), device="meta")
    with torch.no_grad():
        count = count_flops(meta, x)
    return count.total / batch_size


def input_gradient_flops(model: torch.nn.Module, input_shape: tuple[int, ...], *, batch_size: int = 2) -> FlopCount:
    """FLOPs of one attack step's forward + backward w.r.t. the input only (eval mode, meta device).

    Parameters keep their ``requires_grad``; ``torch.autograd.grad`` asks only for the input,
    so no weight gradient is computed (REFERENCE.md section 3: one PGD step = 2F).
    """
    meta = meta_copy(model).eval()
    x = torch.empty((batch_size, *input_shape), device="meta", requires_grad=True)

    def step() -> None:
        loss = meta(x).float().sum()
        torch.autograd.grad(loss, x)

    return count_flops(step)


class PassCounter(torch.nn.Module):
    """Wraps a model and records how many images went through it, and how many of those with gradients.

    For costing an evaluation as actually run (AutoAttack stops attacking points once broken,
    so its cost depends on the model): wrap the model, run the attack, then price the counts with
    `robustperf.cost.accounting.eval_flops_from_counts`. A forward whose input requires grad
    while autograd is on counts as a gradient pass (the attacks differentiate w.r.t. the input).
    This costs nothing per call, unlike running the whole evaluation under `FlopCounter`.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.n_forward_images = 0
        self.n_gradient_images = 0

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if torch.is_grad_enabled() and x.requires_grad:
            self.n_gradient_images += x.shape[0]
        else:
            self.n_forward_images += x.shape[0]
        return self.model(x, *args, **kwargs)
