"""Inference cost of a model: latency and throughput per batch size and precision, memory, GFLOPs.

``InferenceBenchmark(InferenceConfig(...)).measure(model) -> InferenceResult``.

Precisions: fp32; bf16 and fp16 (the model's weights and inputs cast, as deployed;
a precision the backend cannot run is reported unsupported with the error); int8
(CPU only) by FX graph-mode post-training *static* quantisation (`quantize_int8`):
convolutions, linear layers and their fused BatchNorm/ReLU become int8 kernels with
per-channel weight scales, activation ranges calibrated on ``calibration_batches``
batches (the caller's images, or uniform random ones). ``int8_mode="dynamic"`` keeps the
old dynamic quantisation of ``nn.Linear`` only (convolutions stay fp32).

Energy per image: each timed point runs under an energy meter (``InferenceConfig.meter``;
``auto`` is NVML on a GPU, RAPL or a labelled estimate on a CPU) and reports joules per image
with the meter's source.

How robust the int8 model is (attacks, a layer up) is `robustperf.evaluation.quantized`.

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
        int8_mode: "static" (FX post-training static quantisation: convs and linears) or "dynamic"
            (``nn.Linear`` only).
        calibration_batches: batches of the largest batch size used to calibrate static int8.
        meter: energy meter for joules per image (`robustperf.cost.energy.create_meter`).
        watts: stated power for an energy estimate where nothing is metered.
        min_energy_seconds: the energy window is extended with untimed batches to at least this long
            (energy counters update every ~100 ms; REFERENCE.md s.3 asks for windows >= 1 s).
    """

    input_shape: tuple[int, ...] = (3, 32, 32)
    batch_sizes: tuple[int, ...] = (1, 32, 128)
    precisions: tuple[str, ...] = ("fp32", "bf16", "fp16", "int8")
    device: str = "cpu"
    warmup: int = 2
    iters: int = 5
    int8_mode: str = "static"
    calibration_batches: int = 4
    meter: str = "auto"
    watts: float | None = None
    min_energy_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.min_energy_seconds < 0:
            raise InferenceConfigError("min_energy_seconds must be >= 0")
        if self.int8_mode not in ("static", "dynamic"):
            raise InferenceConfigError(f"int8_mode must be 'static' (convs too) or 'dynamic', got {self.int8_mode!r}")
        if self.calibration_batches < 1:
            raise InferenceConfigError("calibration_batches must be >= 1")
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
    joules_per_image: float | None = None
    energy_source: str | None = None


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


def _quantized_conv(module: torch.nn.Module) -> bool:
    from torch.ao.nn.quantized.modules.conv import _ConvNd as QuantizedConvNd

    return isinstance(module, QuantizedConvNd)


def quantize_int8(model: torch.nn.Module, calibration: list[torch.Tensor], *, backend: str = "x86") -> torch.nn.Module:
    """Post-training static int8 quantisation of ``model`` (a copy) with FX graph mode, convolutions included.

    Conv/BatchNorm/ReLU and Linear/ReLU chains are fused, weights quantised per channel, and activation
    ranges calibrated by running ``calibration`` batches through observers. The result runs on CPU only.

    Args:
        model: a float model (untouched).
        calibration: input batches in [0, 1] (real images give realistic activation ranges).
        backend: quantised engine ("x86", "fbgemm", "qnnpack", "onednn").
    """
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    if not calibration:
        raise InferenceConfigError("static int8 quantisation needs at least one calibration batch")
    if backend not in torch.backends.quantized.supported_engines:
        raise InferenceConfigError(
            f"quantised engine {backend!r} is not in this torch build; choose from {torch.backends.quantized.supported_engines}"
        )
    torch.backends.quantized.engine = backend
    float_model = copy.deepcopy(model).cpu().float().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao quantisation is deprecated in favour of torchao; it still works
        try:
            prepared = prepare_fx(float_model, get_default_qconfig_mapping(backend), (calibration[0].cpu(),))
        except Exception as exc:  # noqa: BLE001 - FX cannot trace every model; say which and how to proceed
            raise InferenceConfigError(
                f"FX graph-mode quantisation could not trace {type(model).__name__} ({type(exc).__name__}: {exc}); "
                "use int8_mode='dynamic' (nn.Linear only)"
            ) from exc
        with torch.inference_mode():
            for batch in calibration:
                prepared(batch.cpu().float())
        return convert_fx(prepared)


def count_quantized_convs(model: torch.nn.Module) -> tuple[int, int]:
    """(quantised conv modules, float ``nn.Conv*`` modules left) in a model."""
    quantized = sum(1 for m in model.modules() if _quantized_conv(m))
    float_convs = sum(1 for m in model.modules() if type(m) in (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d))
    return quantized, float_convs


def _prepare(
    model: torch.nn.Module, precision: str, device: torch.device, cfg: InferenceConfig | None = None,
    calibration: list[torch.Tensor] | None = None,
) -> tuple[torch.nn.Module, torch.dtype, str]:
    """A copy of the model in ``precision`` on ``device``, the input dtype, and a note."""
    cfg = cfg or InferenceConfig()
    if precision == "int8":
        if device.type != "cpu":
            raise InferenceConfigError("int8 quantised kernels run on CPU only; use --device cpu for int8")
        if cfg.int8_mode == "static":
            if calibration is None:
                gen = torch.Generator().manual_seed(0)
                calibration = [torch.rand((max(cfg.batch_sizes), *cfg.input_shape), generator=gen)
                               for _ in range(cfg.calibration_batches)]
            quantized = quantize_int8(model, calibration)
            n_q, n_float = count_quantized_convs(quantized)
            return quantized, torch.float32, (
                f"static int8 (FX, {torch.backends.quantized.engine}): {n_q} conv(s) quantised, {n_float} float conv(s) left; "
                f"calibrated on {len(calibration)} batch(es)"
            )
        model = copy.deepcopy(model).eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao eager quantization is deprecated in favour of torchao
            quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        return quantized, torch.float32, "dynamic int8 on nn.Linear only; convolutions stay fp32"
    model = copy.deepcopy(model).eval()
    dtype = DTYPES[precision]
    return model.to(device=device, dtype=dtype), dtype, ""


def _time_batches(
    model: torch.nn.Module, x: torch.Tensor, cfg: InferenceConfig, meter: Any = None
) -> tuple[float, Any, int]:
    """Median seconds per batch; the energy reading over the timed batches (warm-up excluded), extended
    with untimed batches until the window lasts ``cfg.min_energy_seconds`` (counters tick every ~100 ms);
    and how many batches the energy window covers."""
    times = []
    reading = None
    n_metered = 0
    with torch.inference_mode():
        for i in range(cfg.warmup + cfg.iters):
            synchronize(x.device)
            if i == cfg.warmup and meter is not None:
                meter.start()
            t0 = time.perf_counter()
            model(x)
            synchronize(x.device)
            if i >= cfg.warmup:
                times.append(time.perf_counter() - t0)
                n_metered += 1
        if meter is not None:
            from robustperf.cost.energy import energy_method

            counter = energy_method(getattr(meter, "source", None)) == "metered"  # an estimate needs no long window
            while counter and meter.read().seconds < cfg.min_energy_seconds:
                model(x)
                synchronize(x.device)
                n_metered += 1
            reading = meter.stop()
    return statistics.median(times), reading, n_metered


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

    def measure(self, model: torch.nn.Module, *, calibration: list[torch.Tensor] | None = None) -> InferenceResult:
        """Measure ``model`` (it is copied per precision and left untouched).

        Args:
            model: the float model.
            calibration: input batches for static int8 calibration (default: uniform random images).
        """
        cfg = self.config
        device = torch.device(cfg.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InferenceConfigError(f"device {cfg.device!r} asked for but CUDA is not available; use --device cpu")
        self._calibration = calibration
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
        from robustperf.cost.energy import create_meter

        try:
            prepared, dtype, note = _prepare(model, precision, device, self.config, getattr(self, "_calibration", None))
        except (InferenceConfigError, RuntimeError) as exc:
            return [InferencePoint(precision, b, False, note=str(exc)) for b in self.config.batch_sizes]
        meter = create_meter(self.config.meter, device_index=device.index if device.type == "cuda" else None,
                             watts=self.config.watts)
        points = []
        for batch in self.config.batch_sizes:
            x = torch.rand((batch, *self.config.input_shape), device=device).to(dtype)
            try:
                seconds, reading, n_metered = _time_batches(prepared, x, self.config, meter)
                peak = _peak_activation(prepared, x)
            except (RuntimeError, NotImplementedError) as exc:  # e.g. fp16 convolution missing on this CPU
                points.append(InferencePoint(precision, batch, False, note=f"{type(exc).__name__}: {exc}"[:200]))
                continue
            # the meter window: the timed batches (warm-up excluded), extended to min_energy_seconds
            jpi = None if reading.joules is None else reading.joules / (batch * n_metered)
            points.append(InferencePoint(precision, batch, True, seconds * 1e3, batch / seconds, peak, note,
                                         jpi, reading.source))
        return points
