"""What robust training costs over standard training, per epoch and down to layer types (papers/004 XV).

``measure_overhead(cfg, OverheadConfig(methods=("standard", "pgd_at", "trades"))) -> OverheadResult``

Two measurements on the same model (same initial weights), the same data and the same optimiser:

1. **Per-epoch cost with repeats.** Each repeat trains one epoch (or ``max_steps`` batches) of every
   method, in interleaved order (standard, pgd_at, trades, standard, ...) so a noisy machine penalises
   no method in particular. Time and energy come from an energy meter (`robustperf.cost.energy`; on a
   machine without counters the energy is an estimate and its ratio equals the time ratio - the result
   says so). Following papers/004 ("drop the fastest and slowest times, reporting the arithmetic mean of
   the remaining runs"), each figure is the mean of the repeats after dropping the fastest and the
   slowest; power = energy / time and CO2 = kWh x grid intensity (the run config's cost constants).
   Ratios are each method's figure over standard training's.
2. **Time by layer type** from ``torch.profiler``: a few steps per method, each profiled op's *self*
   time (CPU time, or device time on CUDA) assigned to a layer type by its op name - convolution,
   batch norm, activation, linear, attention (SDPA / batched matmuls), loss (softmax, CE, KL), optimizer
   step (every op of the optimizer phase) or other (the attack's sign/clamp/projection, copies) - and
   to a phase: the attack's input-gradient passes (the method's step until it reports its inner
   maximisation done, ``on_attack_done``), the weight update's forward + backward, and the optimizer step
   (with the EMA update when the config averages weights).

The step is the training loop's own (`robustperf.training.step.StepRunner`, built by
`robustperf.training.setup.build_stepper` as `train` builds it): ``method.step`` -> ``backward`` ->
``after_backward`` -> clipping -> learning rate -> ``optimizer.step`` -> EMA; the profiler only passes it
a phase hook that opens a named ``torch.profiler`` range around each phase.
"""

from __future__ import annotations

import copy
import logging
import math
import re
import statistics
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from robustperf.config import RunConfig
    from robustperf.training.step import StepRunner

log = logging.getLogger(__name__)

LAYER_TYPES = ("conv", "batch_norm", "activation", "linear", "attention", "loss", "optimizer", "other")
PHASES = ("attack", "update", "optimizer")  # the StepRunner's phases (`training.step.PHASES`), in report order
# Op-name patterns (aten ops, autograd nodes), checked in this order; the first match wins.
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("optimizer", re.compile(r"^Optimizer\.")),  # Optimizer.zero_grad#SGD.zero_grad (step runs in its own phase)
    ("attention", re.compile(r"scaled_dot_product|attention|bmm|baddbmm", re.I)),
    ("loss", re.compile(r"softmax|nll_loss|cross_entropy|kl_div|SoftmaxBackward|NllLoss", re.I)),
    ("conv", re.compile(r"conv", re.I)),
    ("batch_norm", re.compile(r"batch_norm|batchnorm|layer_norm|group_norm|native_norm", re.I)),
    ("activation", re.compile(r"relu|gelu|silu|sigmoid|tanh|hardtanh|elu|threshold_backward|leaky|mish|swish", re.I)),
    ("linear", re.compile(r"addmm|linear|\bmm\b|aten::mm|matmul|MmBackward|AddmmBackward", re.I)),
)
_MARK = "robustperf::"


class OverheadConfigError(ValueError):
    """A bad overhead-measurement setting; the message names the fix."""


@dataclass(frozen=True)
class OverheadConfig:
    """What to measure.

    Attributes:
        methods: training methods (registry names); "standard" is added first if missing (the baseline).
        repeats: epochs measured per method (>= 3: the fastest and slowest are dropped).
        max_steps: batches per measured "epoch" (None: the whole training set).
        profile_steps: steps profiled per method for the layer-type breakdown (0: skip it).
        meter: energy meter name (`robustperf.cost.energy.create_meter`).
        watts: stated power for an estimate where nothing can be metered.
    """

    methods: tuple[str, ...] = ("standard", "pgd_at", "trades")
    repeats: int = 5
    max_steps: int | None = None
    profile_steps: int = 3
    meter: str = "auto"
    watts: float | None = None

    def __post_init__(self) -> None:
        if self.repeats < 3:
            raise OverheadConfigError(f"repeats must be >= 3 (the fastest and slowest are dropped), got {self.repeats}")
        if self.max_steps is not None and self.max_steps < 1:
            raise OverheadConfigError(f"max_steps must be >= 1 or None, got {self.max_steps}")
        if self.profile_steps < 0:
            raise OverheadConfigError(f"profile_steps must be >= 0, got {self.profile_steps}")
        if not self.methods:
            raise OverheadConfigError("give at least one method, e.g. --methods pgd_at,trades")

    @property
    def all_methods(self) -> tuple[str, ...]:
        rest = tuple(m for m in self.methods if m != "standard")
        return ("standard", *dict.fromkeys(rest))


def trimmed_mean(values: list[float]) -> float:
    """Mean after dropping the smallest and the largest value (papers/004's protocol); needs >= 3 values."""
    if len(values) < 3:
        raise ValueError(f"need >= 3 repeats to drop the fastest and slowest, got {len(values)}")
    kept = sorted(values)[1:-1]
    return statistics.fmean(kept)


@dataclass(frozen=True)
class EpochCost:
    """One method's per-epoch cost: the trimmed mean of the repeats, and the raw repeats.

    Attributes:
        method: method name.
        steps: batches per measured epoch; images: images per measured epoch.
        seconds, joules, watts, co2_kg: trimmed means per epoch (joules/watts/co2 None without energy).
        seconds_repeats, joules_repeats: every repeat, in order.
        ratios: figure / standard training's figure for seconds, joules, watts, co2_kg and (counted) flops.
        flops_per_image: counted training FLOPs per image of one step (`train_flops_per_sample`).
    """

    method: str
    steps: int
    images: int
    seconds: float
    joules: float | None
    watts: float | None
    co2_kg: float | None
    seconds_repeats: tuple[float, ...]
    joules_repeats: tuple[float | None, ...]
    ratios: dict[str, float | None] = field(default_factory=dict)
    flops_per_image: float | None = None


@dataclass(frozen=True)
class LayerBreakdown:
    """Profiled time of one method's steps, per step, by layer type and by phase (milliseconds).

    Attributes:
        method: method name.
        steps: profiled steps.
        clock: "cpu self time" or "device self time".
        by_type: layer type -> ms per step (the `LAYER_TYPES`).
        by_phase: phase -> ms per step: "attack" (input-gradient passes), "update" (the weight update's
            forward + backward), "optimizer" (the optimizer step, and the EMA update when weights are averaged).
        by_phase_type: "phase/type" -> ms per step.
        wall_ms: median wall time of a profiled step (the profiler's own overhead included).
        untracked_ms: median of the step's wall time outside every op: Python, the dispatcher, the
            autograd engine's bookkeeping and the profiler itself (large for tiny models on a CPU).
    """

    method: str
    steps: int
    clock: str
    by_type: dict[str, float]
    by_phase: dict[str, float]
    by_phase_type: dict[str, float]
    wall_ms: float = 0.0
    untracked_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        """Time inside profiled ops per step (sum of the layer types)."""
        return sum(self.by_type.values())


@dataclass(frozen=True)
class OverheadResult:
    """Per-epoch costs and layer-type breakdowns of each method against standard training."""

    model: str
    n_params: int
    device: str
    batch_size: int
    energy_source: str
    energy_method: str
    constants: dict[str, Any]
    epochs: tuple[EpochCost, ...]
    layers: tuple[LayerBreakdown, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for layer, d in zip(self.layers, out["layers"], strict=True):
            d["total_ms"] = layer.total_ms
        return out


def classify_op(name: str) -> str:
    """The layer type an op belongs to by its name (aten op or autograd node); "other" if none matches."""
    for kind, pattern in _PATTERNS:
        if pattern.search(name):
            return kind
    return "other"


# ---------------------------------------------------------------------------- one method's training step


def method_stepper(cfg: RunConfig, method_name: str, base: nn.Module, init_state: dict[str, Any],
                   device: torch.device) -> StepRunner:
    """The training loop's own step (`setup.build_stepper`) for ``method_name``, on a copy of ``base``.

    Every method starts from the same weights (``init_state``) and its own optimiser, EMA and
    attack generator, built exactly as `train` builds them.
    """
    from robustperf.training.setup import build_stepper

    raw = copy.deepcopy(base).to(device)
    raw.load_state_dict(init_state)
    raw.train()
    return build_stepper(cfg.with_overrides({"method.name": method_name}), raw, device)


def _marked(name: str) -> Any:
    """A named profiler range around one phase of the step (`step.PHASES`)."""
    from torch.profiler import record_function

    return record_function(f"{_MARK}{name}")


# ---------------------------------------------------------------------------- the measurement


def measure_overhead(cfg: RunConfig, config: OverheadConfig | None = None) -> OverheadResult:
    """Per-epoch time/energy/power/CO2 ratios and layer-type breakdowns of ``config.methods`` vs standard.

    Args:
        cfg: the run config giving model, data, optimiser, attack settings, device and cost constants
            (its ``method.name`` is replaced by each measured method).
        config: methods, repeats, steps and meter.
    """
    import torch

    from robustperf.cost.conversions import joules_to_kwh, kwh_to_co2_kg, resolve_constants
    from robustperf.cost.energy import create_meter, energy_method
    from robustperf.data import build_data, make_train_loader
    from robustperf.device import DeviceError, resolve_device, synchronize
    from robustperf.models import count_parameters, create_model
    from robustperf.training.methods import METHODS

    config = config or OverheadConfig()
    for name in config.all_methods:
        METHODS.get(name)  # unknown names fail here, with close matches, before any work
    try:
        device = resolve_device(cfg.runtime.device)
    except DeviceError as exc:
        raise OverheadConfigError(str(exc)) from None
    torch.manual_seed(cfg.runtime.seed)
    bundle = build_data(cfg.data, seed=cfg.runtime.seed)
    base = create_model(cfg.model.name, num_classes=bundle.num_classes, input_shape=tuple(bundle.input_shape),
                        mean=bundle.mean, std=bundle.std, **cfg.model.kwargs)
    init_state = copy.deepcopy(base.state_dict())
    loader = make_train_loader(bundle, cfg.data, seed=cfg.runtime.seed, device=device)
    batches = _batches(loader, config.max_steps)
    if not batches:
        raise OverheadConfigError("the training loader yields no batch: lower data.batch_size or raise data.n_train")
    # the loop's own step for each method; a constant learning rate (the schedule's peak): a step's cost
    # does not depend on it
    steppers = {m: method_stepper(cfg, m, base, init_state, device) for m in config.all_methods}
    lr = cfg.optim.lr
    for stepper in steppers.values():  # one untimed step each: allocator and kernel warm-up
        stepper(*batches[0], lr)
    synchronize(device)

    consts = resolve_constants(cfg.cost)
    meter = create_meter(config.meter, device_index=device.index if device.type == "cuda" else None,
                         watts=config.watts)
    seconds: dict[str, list[float]] = {m: [] for m in steppers}
    joules: dict[str, list[float | None]] = {m: [] for m in steppers}
    source = "none"
    for r in range(config.repeats):
        for name, stepper in steppers.items():
            synchronize(device)
            meter.start()
            for x, y in batches:
                stepper(x, y, lr)
            synchronize(device)
            reading = meter.stop()  # its window is the epoch: time and energy of the same interval
            source, elapsed = reading.source, reading.seconds
            seconds[name].append(elapsed)
            joules[name].append(reading.joules)
            log.info("repeat %d/%d %s: %.3f s", r + 1, config.repeats, name, elapsed)

    def co2(j: float | None) -> float | None:
        if j is None:
            return None
        return kwh_to_co2_kg(joules_to_kwh(j, pue=consts.pue.value), g_per_kwh=consts.co2_g_per_kwh.value)

    images = sum(int(x.shape[0]) for x, _ in batches)
    raw: dict[str, dict[str, float | None]] = {}
    for name in steppers:
        t = trimmed_mean(seconds[name])
        js = joules[name]
        j = trimmed_mean([float(v) for v in js if v is not None]) if all(v is not None for v in js) else None
        raw[name] = {"seconds": t, "joules": j, "watts": None if j is None else j / t, "co2_kg": co2(j)}
    flops = {name: _flops_per_image(cfg, name, base, tuple(bundle.input_shape), bundle.num_classes)
             for name in steppers}
    epochs = []
    for name in steppers:
        ratios = {k: _ratio(raw[name][k], raw["standard"][k]) for k in ("seconds", "joules", "watts", "co2_kg")}
        ratios["flops"] = _ratio(flops[name], flops["standard"])
        fig = raw[name]
        epochs.append(EpochCost(name, len(batches), images, float(fig["seconds"] or 0.0), fig["joules"], fig["watts"],
                                fig["co2_kg"], tuple(seconds[name]), tuple(joules[name]), ratios, flops[name]))
    layers = tuple(profile_layers(steppers[m], batches, config.profile_steps, m, lr=lr)
                   for m in steppers) if config.profile_steps else ()
    method_kind = energy_method(source)
    notes = [f"epoch = {len(batches)} batches of {cfg.data.batch_size} ({images} images, prepared once: data "
             f"loading not timed); {config.repeats} repeats per method, interleaved; fastest and slowest dropped, "
             "mean of the rest"]
    if layers:
        notes.append("layer types: median over the profiled steps of each category's self time (an undisturbed "
                     "step: on a shared machine descheduling lands on random ops); step wall time is the median "
                     "profiled step, delays and profiler overhead included")
    if method_kind == "estimated":
        notes.append("energy is an estimate (a constant power x time), so its ratios equal the time ratios "
                     "and power ratios are 1 by construction; meter with RAPL or NVML for real power differences")
    return OverheadResult(
        model=cfg.model.name, n_params=count_parameters(base), device=str(device), batch_size=cfg.data.batch_size,
        energy_source=source, energy_method=method_kind, constants=consts.to_dict(), epochs=tuple(epochs),
        layers=layers, notes=tuple(notes),
    )


def _flops_per_image(cfg: RunConfig, method: str, model: nn.Module, shape: tuple[int, ...],
                     num_classes: int) -> float | None:
    from robustperf.cost.accounting import train_flops_per_sample
    from robustperf.training.methods import flop_iteration

    try:
        method_cfg = cfg.with_overrides({"method.name": method})
        return train_flops_per_sample(model, method_cfg, flop_iteration(method_cfg.method), input_shape=shape,
                                      num_classes=num_classes).per_sample
    except Exception as exc:  # noqa: BLE001 - a FLOP count is a side figure; say why it is missing
        log.warning("could not count FLOPs of %s (%s: %s)", method, type(exc).__name__, exc)
        return None


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or not math.isfinite(a) or not math.isfinite(b):
        return None
    return a / b


def _batches(loader: Any, max_steps: int | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The batches of one epoch (materialised once, so every method sees exactly the same ones)."""
    out = []
    for i, (x, y) in enumerate(loader):
        if max_steps is not None and i >= max_steps:
            break
        out.append((x, y))
    return out


def profile_layers(stepper: StepRunner, batches: list[tuple[torch.Tensor, torch.Tensor]], steps: int,
                   name: str, *, lr: float) -> LayerBreakdown:
    """Profile ``steps`` training steps and split their self time by layer type and phase.

    Each figure is the median over the profiled steps of that category's time in a step, so one step that
    the OS descheduled (a shared machine) does not move it.
    """
    from torch.profiler import ProfilerActivity, profile, record_function, schedule

    from robustperf.device import synchronize

    cuda = stepper.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    # One warm-up step under the profiler (its first step carries the profiler's own start-up), then `steps`.
    with profile(activities=activities, schedule=schedule(wait=0, warmup=1, active=steps, repeat=1)) as prof:
        for i in range(steps + 1):
            x, y = batches[i % len(batches)]
            with record_function(f"{_MARK}step"):
                stepper(x, y, lr, phase=_marked)
                synchronize(stepper.device)
            prof.step()
    events = list(prof.events())
    marks = [(ev.name[len(_MARK):], ev.time_range.start, ev.time_range.end)
             for ev in events if ev.name.startswith(_MARK)]
    step_ranges = sorted((start, end) for phase, start, end in marks if phase == "step")
    ranges = [m for m in marks if m[0] != "step"]
    per_step: list[dict[str, float]] = [{"wall": end - start} for start, end in step_ranges]
    for ev in events:
        if ev.name.startswith(_MARK) or ev.name.startswith("ProfilerStep"):
            continue
        us = float(getattr(ev, "self_device_time_total", 0.0) if cuda else ev.self_cpu_time_total)
        t = ev.time_range.start
        index = next((i for i, (a, b) in enumerate(step_ranges) if a <= t <= b), None)
        if us <= 0 or index is None:
            continue
        phase = _phase_of(t, ranges)
        kind = "optimizer" if phase == "optimizer" else classify_op(ev.name)
        bucket = per_step[index]
        bucket["ops"] = bucket.get("ops", 0.0) + us
        for key in (f"type/{kind}", *((f"pt/{phase}/{kind}",) if phase is not None else ())):
            bucket[key] = bucket.get(key, 0.0) + us

    def median_ms(key: str) -> float:
        return statistics.median([b.get(key, 0.0) for b in per_step]) * 1e-3 if per_step else 0.0

    pairs = sorted({k[3:] for b in per_step for k in b if k.startswith("pt/")})
    by_phase_type = {k: median_ms(f"pt/{k}") for k in pairs}
    return LayerBreakdown(
        method=name, steps=len(per_step),
        clock=("device" if cuda else "cpu") + " self time, median over steps",
        by_type={k: median_ms(f"type/{k}") for k in LAYER_TYPES},
        # a phase is the sum of its (phase, type) medians, so phases and types describe the same typical step
        by_phase={p: sum(v for k, v in by_phase_type.items() if k.startswith(f"{p}/")) for p in PHASES},
        by_phase_type=by_phase_type,
        wall_ms=median_ms("wall"),
        untracked_ms=statistics.median([max(0.0, b["wall"] - b.get("ops", 0.0)) for b in per_step]) * 1e-3
        if per_step and not cuda else 0.0,
    )


def _phase_of(t: float, ranges: list[tuple[str, float, float]]) -> str | None:
    """The innermost marked phase containing time ``t`` (the attack range lies inside the update range)."""
    best: tuple[str, float] | None = None
    for phase, start, end in ranges:
        if start <= t <= end and (best is None or end - start < best[1]):
            best = (phase, end - start)
    return None if best is None else best[0]


# ---------------------------------------------------------------------------- figure


def plot_overhead(result: OverheadResult) -> Any:
    """Two panels: ratios vs standard (time, energy, power, CO2) and ms per step by layer type."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
    metrics = (("seconds", "time"), ("joules", "energy"), ("watts", "power"), ("co2_kg", "CO2"))
    width = 0.8 / max(1, len(result.epochs))
    top = 1.0
    for i, e in enumerate(result.epochs):
        values = [e.ratios.get(k) or 0.0 for k, _ in metrics]
        top = max(top, *values)
        ax1.bar([j + i * width for j in range(len(metrics))], values, width, label=e.method)
    ax1.set_ylim(0, top * 1.2)  # head room for the legend above the bars
    ax1.set_xticks([j + width * (len(result.epochs) - 1) / 2 for j in range(len(metrics))])
    ax1.set_xticklabels([label for _, label in metrics])
    ax1.axhline(1.0, color="grey", lw=0.8)
    ax1.set_ylabel("per epoch, ratio to standard training")
    ax1.set_title(f"overhead per epoch ({result.energy_method} energy)", fontsize=10)
    ax1.legend(fontsize=8, loc="upper center", ncols=len(result.epochs))
    if result.layers:
        left = [0.0] * len(result.layers)
        names = [layer.method for layer in result.layers]
        for kind in LAYER_TYPES:
            vals = [layer.by_type.get(kind, 0.0) for layer in result.layers]
            ax2.barh(names, vals, left=left, label=kind)
            left = [a + b for a, b in zip(left, vals, strict=True)]
        ax2.set_xlabel(f"ms per step ({result.layers[0].clock})")
        ax2.set_title("time by layer type (torch.profiler)", fontsize=10)
        ax2.legend(fontsize=7, ncols=2)
        ax2.invert_yaxis()
    else:
        ax2.set_axis_off()
        ax2.text(0.5, 0.5, "layer breakdown not profiled (profile_steps=0)", ha="center", va="center")
    return fig
