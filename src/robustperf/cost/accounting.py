"""Per-sample training FLOPs of a configured run, and the JSON cost block of a run record.

`train_flops_per_sample` counts one training iteration of the configured method (the
method's own step, handed over by the training engine: this module never imports it)
with `FlopCounter` on a meta-device copy of the model (REFERENCE.md section 3:
one iteration per (architecture, input shape, method, attack steps) is enough,
and on the meta device it is free). The counted FLOPs divided by the forward
FLOPs give the method's forward-pass equivalents, which the analytic model
(`robustperf.cost.analytic`) cross-checks: 23 for PGD-10 AT, 27 for TRADES-10.

`run_cost` turns what a run measured (seconds, samples, FLOPs per sample,
joules) into the record's ``cost`` dict with kWh, CO2, USD and the constants used.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from robustperf.cost import analytic
from robustperf.cost.conversions import (
    electricity_usd,
    gpu_hours,
    gpu_hours_usd,
    joules_to_kwh,
    kwh_to_co2_kg,
    resolve_constants,
)

if TYPE_CHECKING:
    import torch

    from robustperf.config import CostConfig, RunConfig
    from robustperf.cost.flops import FlopCount

log = logging.getLogger(__name__)

COUNT_BATCH = 2  # samples in the counted meta-device batch; FLOPs are linear in it


@dataclass(frozen=True)
class FlopsBreakdown:
    """Training FLOPs per image for one (architecture, input shape, method, attack steps).

    Attributes:
        forward_flops: FLOPs of one inference forward pass per image (counted).
        passes: forward-pass equivalents per image per training step (counted / forward_flops).
        per_sample: training FLOPs per image seen (forward_flops * passes).
        method_note: what was counted and how.
        attack_flops: per image, the part spent inside the attack (input-gradient steps).
        forward_part: per image, FLOPs of forward-phase ops in the iteration.
        backward_part: per image, FLOPs of backward-phase ops in the iteration.
        analytic_passes: the analytic model's k_method for the same method (None if it has none).
        by_op: per image FLOPs of the iteration, keyed ``"phase/op"``.
    """

    forward_flops: float
    passes: float
    per_sample: float
    method_note: str
    attack_flops: float = 0.0
    forward_part: float = 0.0
    backward_part: float = 0.0
    analytic_passes: float | None = None
    by_op: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "forward_flops": self.forward_flops,
            "passes": self.passes,
            "per_sample": self.per_sample,
            "attack_flops": self.attack_flops,
            "forward_part": self.forward_part,
            "backward_part": self.backward_part,
            "analytic_passes": self.analytic_passes,
            "method_note": self.method_note,
        }


# ---------------------------------------------------------------------------- counting a training iteration

Iteration = Callable[["torch.nn.Module", "torch.Tensor", "torch.Tensor", Callable[[], None]], object]
"""One training iteration ``(model, x, y, attack_done)``: the method's step, ``backward`` and whatever runs
before the optimiser step, calling ``attack_done()`` when the inner maximisation ends (so the attack's
share can be told apart). The training engine hands its methods' real iteration
(`robustperf.training.methods.flop_iteration`); this module counts whatever it is handed."""


def _per_image_ops(count: FlopCount, batch: int) -> dict[str, float]:
    return {f"{phase}/{op}": n / batch for (phase, op), n in count.by_op.items()}


def count_iteration(
    model: torch.nn.Module, iteration: Iteration, *, input_shape: tuple[int, ...], batch_size: int = COUNT_BATCH
) -> tuple[FlopCount, FlopCount]:
    """Count ``iteration`` on a weightless meta-device copy of ``model`` (the model itself is not touched).

    Returns:
        (whole iteration, the part before ``attack_done()``; zero if it was not called) for ``batch_size`` inputs.
    """
    import torch

    from robustperf.cost.flops import FlopCount, FlopCounter, meta_copy

    x = torch.rand((batch_size, *input_shape), device="meta")
    y = torch.zeros(batch_size, dtype=torch.long, device="meta")
    marks: list[FlopCount] = []
    with FlopCounter() as counter:
        iteration(meta_copy(model), x, y, lambda: marks.append(counter.result()))
    return counter.result(), marks[0] if marks else FlopCount(0, 0)


def _analytic_passes(method: str, n_steps: int, awp: bool, kwargs: Mapping[str, Any]) -> float | None:
    """The analytic table's k_method; free AT's replays and an ensemble's member method come from the
    config's ``method.kwargs`` (missing: the analytic table's defaults, which equal the methods')."""
    replays, member = kwargs.get("replays"), kwargs.get("member_method")
    try:
        return analytic.forward_equivalents(method, n_steps, awp=awp, replays=None if replays is None else int(replays),
                                            member_method=None if member is None else str(member))
    except analytic.UnknownMethodError:
        return None


def train_flops_per_sample(
    model: torch.nn.Module, cfg: RunConfig, iteration: Iteration, *, input_shape: tuple[int, ...],
    num_classes: int | None = None,
) -> FlopsBreakdown:
    """Counted training FLOPs per image seen: ``iteration`` (``cfg``'s method) run once on ``model``.

    The model is not touched (a weightless meta-device copy runs), so this is
    instant even for a WRN-70-16 and safe mid-training.

    Args:
        model: the model as built for the run (any device).
        cfg: run config (method name, attack steps, AWP: for the note and the analytic cross-check).
        iteration: the method's training iteration (`Iteration`).
        input_shape: one image's shape, e.g. (3, 32, 32).
        num_classes: unused (the model's head has them); kept so existing calls keep working.
    """
    from robustperf.cost.flops import forward_flops

    del num_classes
    fwd = forward_flops(model, input_shape, batch_size=COUNT_BATCH)
    step, attack = count_iteration(model, iteration, input_shape=input_shape)
    per_sample = step.total / COUNT_BATCH
    method, n_steps, awp = cfg.method.name, cfg.method.attack.n_steps, cfg.method.awp is not None
    note = (
        f"counted: one {method} iteration (k={n_steps}{', awp' if awp else ''}), the method's own step, "
        f"robustperf FlopCounter on the meta device, batch {COUNT_BATCH}"
    )
    return FlopsBreakdown(
        forward_flops=fwd,
        passes=per_sample / fwd if fwd else 0.0,
        per_sample=per_sample,
        method_note=note,
        attack_flops=attack.total / COUNT_BATCH,
        forward_part=step.forward / COUNT_BATCH,
        backward_part=step.backward / COUNT_BATCH,
        analytic_passes=_analytic_passes(method, n_steps, awp, cfg.method.kwargs),
        by_op=_per_image_ops(step, COUNT_BATCH),
    )


# ---------------------------------------------------------------------------- the record's cost block


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def run_cost(
    cost_cfg: CostConfig,
    *,
    seconds: float,
    samples_seen: float,
    flops_per_sample: float | None,
    joules: float | None,
    energy_source: str,
    n_gpus: int = 1,
    peak_memory_bytes: int | None = None,
    eval_flops: float = 0.0,
) -> dict[str, Any]:
    """The JSON-ready ``cost`` block of a run record.

    Raw measurements (seconds, joules, FLOPs) are stored next to every derived figure
    and the constants (with sources) that produced it (REFERENCE.md section 3).

    Args:
        cost_cfg: the run's ``cost`` section (PUE, grid, prices).
        seconds: wall-clock training seconds.
        samples_seen: training images processed (all ranks).
        flops_per_sample: `FlopsBreakdown.per_sample` (None or NaN: not counted, stored as null).
        joules: measured device energy summed over GPUs (None: time-only meter).
        energy_source: the meter's source ("nvml", "sampling", "rapl", "fake", "none", or
            "estimate: <power and why>"); stored with ``energy_method`` (metered/estimated/fake/none).
        n_gpus: devices used (for GPU-hours).
        peak_memory_bytes: peak accelerator memory, if measured.
        eval_flops: FLOPs spent on evaluation during training (reported beside, not inside, train_flops).
    """
    from robustperf.cost.energy import energy_method

    consts = resolve_constants(cost_cfg)
    per_sample = _finite(flops_per_sample)  # None when FLOPs were not counted (cost.count_flops=false)
    train_flops = None if per_sample is None else per_sample * float(samples_seen)
    evals = _finite(eval_flops)
    hours = gpu_hours(seconds, n_gpus=n_gpus)
    kwh = co2 = usd_energy = None
    if joules is not None:
        kwh = joules_to_kwh(joules, pue=consts.pue.value)
        co2 = kwh_to_co2_kg(kwh, g_per_kwh=consts.co2_g_per_kwh.value)
        usd_energy = electricity_usd(kwh, usd_per_kwh=consts.usd_per_kwh.value)
    usd_cloud = None
    if consts.usd_per_gpu_hour is not None:
        usd_cloud = gpu_hours_usd(hours, usd_per_gpu_hour=consts.usd_per_gpu_hour.value)
    return {
        "train_flops": train_flops,
        "flops_per_sample": per_sample,
        "samples_seen": float(samples_seen),
        "eval_flops": evals,
        "total_flops": None if train_flops is None else train_flops + (evals or 0.0),
        "seconds": float(seconds),
        "n_gpus": int(n_gpus),
        "gpu_hours": hours,
        "energy_joules": None if joules is None else float(joules),
        "energy_kwh": kwh,
        "co2_kg": co2,
        "usd": usd_energy if usd_energy is not None else usd_cloud,
        "usd_electricity": usd_energy,
        "usd_gpu_hours": usd_cloud,
        "energy_source": energy_source,
        "energy_method": energy_method(energy_source) if joules is not None else "none",
        "peak_memory_bytes": peak_memory_bytes,
        "constants": consts.to_dict(),
    }


# ---------------------------------------------------------------------------- evaluation cost


@dataclass(frozen=True)
class EvalFlops:
    """FLOPs of an evaluation, from counted per-image costs.

    Attributes:
        forward_flops: one forward pass per image.
        gradient_flops: one input-gradient evaluation (forward + backward to the input) per image.
        total: FLOPs of the whole evaluation.
        note: how ``total`` was obtained.
    """

    forward_flops: float
    gradient_flops: float
    total: float
    note: str


def _per_image_costs(model: torch.nn.Module, input_shape: tuple[int, ...]) -> tuple[float, float]:
    from robustperf.cost.flops import forward_flops, input_gradient_flops

    fwd = forward_flops(model, input_shape, batch_size=COUNT_BATCH)
    grad = input_gradient_flops(model, input_shape, batch_size=COUNT_BATCH).total / COUNT_BATCH
    return fwd, grad


def pgd_eval_flops(
    model: torch.nn.Module, input_shape: tuple[int, ...], *, n_examples: int, n_steps: int, restarts: int = 1
) -> EvalFlops:
    """FLOPs of a clean + PGD-k evaluation of ``n_examples`` images (every image runs every step).

    Per image: one clean forward, then per restart k input-gradient steps and one scoring forward.
    """
    fwd, grad = _per_image_costs(model, input_shape)
    per_image = fwd + restarts * (n_steps * grad + fwd)
    return EvalFlops(
        fwd,
        grad,
        per_image * n_examples,
        f"clean + PGD-{n_steps} x {restarts} restart(s) on {n_examples} images, counted per image",
    )


def eval_flops_from_counts(
    model: torch.nn.Module, input_shape: tuple[int, ...], *, n_forward_images: float, n_gradient_images: float
) -> EvalFlops:
    """FLOPs of an evaluation as actually run (AutoAttack, early-stopping PGD).

    Args:
        model: the evaluated model.
        input_shape: one image's shape.
        n_forward_images: images passed through plain forwards, summed over all calls
            (e.g. batch sizes of every forward query the attacks made).
        n_gradient_images: images passed through forward + input-gradient calls, summed.
    """
    fwd, grad = _per_image_costs(model, input_shape)
    total = fwd * n_forward_images + grad * n_gradient_images
    return EvalFlops(
        fwd, grad, total, f"recorded counts: {n_forward_images:g} image-forwards, {n_gradient_images:g} image-gradients"
    )
