"""Inference cost of a model: latency and throughput per batch size and precision, memory, GFLOPs.

``InferenceBenchmark(InferenceConfig(...)).measure(model) -> InferenceResult``.

Precisions: fp32; bf16 and fp16 (the model's weights and inputs cast, as deployed;
a precision the backend cannot run is reported unsupported with the error); int8
via PyTorch dynamic quantization of ``nn.Linear`` layers on CPU only (convolutions
stay fp32 there, so CNNs barely change - the result says so).

Peak activation memory: on CUDA ``torch.cuda.max_memory_allocated`` above the
weights (measured). On CPU there is no allocator statistic, so we *estimate* it by
tracking live tensors produced by aten ops (`ActivationTracker`: each new,
non-view output is added when created and removed by a weakref finaliser when
freed; the peak of that sum is reported). It ignores allocator caching and
kernels' internal scratch buffers, so it is a lower bound.
"""

from __future__ import annotations

import copy
import logging
import statistics
import time
import warnings
import weakref
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from robustperf.cost.flops import forward_flops
from robustperf.device import synchronize

log = logging.getLogger(__name__)

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
PRECISIONS = ("fp32", "bf16", "fp16", "int8")


class InferenceConfigError(ValueError):
    """A bad inference benchmark setting; the message names the fix."""


@dataclass(frozen=True)
class InferenceConfig:
    """What to measure.

    Attributes:
        input_shape: one image's shape (C, H, W).
        batch_sizes: batch sizes to time.
        precisions: any of "fp32", "bf16", "fp16", "int8".
        device: "cpu", "cuda" or "cuda:N".
        warmup: untimed batches before timing.
        iters: timed batches (the median latency is reported).
    """

    input_shape: tuple[int, ...] = (3, 32, 32)
    batch_sizes: tuple[int, ...] = (1, 32, 128)
    precisions: tuple[str, ...] = ("fp32", "bf16", "fp16", "int8")
    device: str = "cpu"
    warmup: int = 2
    iters: int = 5

    def __post_init__(self) -> None:
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad:
            raise InferenceConfigError(f"unknown precision(s) {bad}; choose from {list(PRECISIONS)}")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise InferenceConfigError(f"batch_sizes must be positive integers, got {self.batch_sizes}")
        if self.iters < 1 or self.warmup < 0:
            raise InferenceConfigError("iters must be >= 1 and warmup >= 0")


@dataclass(frozen=True)
class InferencePoint:
    """One (precision, batch size) measurement."""

    precision: str
    batch_size: int
    supported: bool
    latency_ms: float | None = None  # median wall time of one batch
    throughput: float | None = None  # images per second
    peak_activation_bytes: int | None = None
    note: str = ""


@dataclass(frozen=True)
class InferenceResult:
    """Static and measured inference cost of one model."""

    n_params: int
    param_bytes: int  # as stored (fp32 weights: 4 bytes each)
    gflops: float  # forward GFLOPs per image (counted)
    device: str
    activation_memory_method: str
    points: tuple[InferencePoint, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _storage_ptr(t: torch.Tensor) -> int:
    ptr = t.untyped_storage().data_ptr()
    return ptr if ptr else id(t)  # meta tensors have no storage address


class ActivationTracker(TorchDispatchMode):
    """Peak bytes of live tensors created by aten ops (views and in-place results excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0

    def _free(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        # Outputs that alias an input (in-place ops, views - also those inference_mode does not flag) are not new.
        inputs = {_storage_ptr(a) for a in args if isinstance(a, torch.Tensor)}
        outs = out if isinstance(out, tuple | list) else (out,)
        for t in outs:
            if not isinstance(t, torch.Tensor) or _storage_ptr(t) in inputs or t._is_view():
                continue
            nbytes = t.numel() * t.element_size()
            self.live += nbytes
            self.peak = max(self.peak, self.live)
            weakref.finalize(t, self._free, nbytes)
        return out


def _prepare(model: torch.nn.Module, precision: str, device: torch.device) -> tuple[torch.nn.Module, torch.dtype, str]:
    """A copy of the model in ``precision`` on ``device``, the input dtype, and a note."""
    model = copy.deepcopy(model).eval()
    if precision == "int8":
        if device.type != "cpu":
            raise InferenceConfigError("int8 dynamic quantization runs on CPU only")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao eager quantization is deprecated in favour of torchao
            quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        return quantized, torch.float32, "dynamic int8 on nn.Linear only; convolutions stay fp32"
    dtype = DTYPES[precision]
    return model.to(device=device, dtype=dtype), dtype, ""


def _time_batches(model: torch.nn.Module, x: torch.Tensor, cfg: InferenceConfig) -> float:
    """Median seconds per batch."""
    times = []
    with torch.inference_mode():
        for i in range(cfg.warmup + cfg.iters):
            synchronize(x.device)
            t0 = time.perf_counter()
            model(x)
            synchronize(x.device)
            if i >= cfg.warmup:
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _peak_activation(model: torch.nn.Module, x: torch.Tensor) -> int:
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        base = torch.cuda.memory_allocated(x.device)
        with torch.inference_mode():
            model(x)
        return int(torch.cuda.max_memory_allocated(x.device) - base)
    with torch.inference_mode(), ActivationTracker() as tracker:
        model(x)
    return tracker.peak


class InferenceBenchmark:
    """Times a model's forward pass per (precision, batch size); construction does no work."""

    def __init__(self, config: InferenceConfig | None = None) -> None:
        self.config = config or InferenceConfig()

    def measure(self, model: torch.nn.Module) -> InferenceResult:
        """Measure ``model`` (it is copied per precision and left untouched)."""
        cfg = self.config
        device = torch.device(cfg.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InferenceConfigError(f"device {cfg.device!r} asked for but CUDA is not available; use --device cpu")
        points = [p for precision in cfg.precisions for p in self._measure_precision(model, precision, device)]
        params = list(model.parameters())
        return InferenceResult(
            n_params=sum(p.numel() for p in params),
            param_bytes=sum(p.numel() * p.element_size() for p in params),
            gflops=forward_flops(model, cfg.input_shape) / 1e9,
            device=str(device),
            activation_memory_method=(
                "cuda max_memory_allocated above weights (measured)"
                if device.type == "cuda"
                else "estimate: peak of live aten-op outputs (dispatch-mode tracker; lower bound)"
            ),
            points=tuple(points),
        )

    def _measure_precision(self, model: torch.nn.Module, precision: str, device: torch.device) -> list[InferencePoint]:
        try:
            prepared, dtype, note = _prepare(model, precision, device)
        except (InferenceConfigError, RuntimeError) as exc:
            return [InferencePoint(precision, b, False, note=str(exc)) for b in self.config.batch_sizes]
        points = []
        for batch in self.config.batch_sizes:
            x = torch.rand((batch, *self.config.input_shape), device=device).to(dtype)
            try:
                seconds = _time_batches(prepared, x, self.config)
                peak = _peak_activation(prepared, x)
            except (RuntimeError, NotImplementedError) as exc:  # e.g. fp16 convolution missing on this CPU
                points.append(InferencePoint(precision, batch, False, note=f"{type(exc).__name__}: {exc}"[:200]))
                continue
            points.append(InferencePoint(precision, batch, True, seconds * 1e3, batch / seconds, peak, note))
        return points
